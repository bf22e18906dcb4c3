/** Key reload state (POST /reload starts one in the background; GET /reload reports it). */
export type ReloadStatus = "idle" | "running" | "completed" | "completed_with_errors" | "failed";

export class Reloader {
  status: ReloadStatus = "idle";
  private lastOperationTime?: string;
  private lastError?: string;

  constructor(private readonly task: () => Promise<{ errors: number }>) {}

  async run(): Promise<void> {
    if (this.status === "running") return;
    this.status = "running";
    this.lastOperationTime = new Date().toISOString();
    this.lastError = undefined;
    try {
      const { errors } = await this.task();
      this.status = errors ? "completed_with_errors" : "completed";
      if (errors) this.lastError = `reload completed with ${errors} keystore error(s); see the log`;
    } catch (e) {
      this.status = "failed";
      this.lastError = `reload failed: ${(e as Error).message}`;
    }
    this.lastOperationTime = new Date().toISOString();
  }

  state(): { status: ReloadStatus; lastOperationTime?: string; lastError?: string } {
    return { status: this.status, lastOperationTime: this.lastOperationTime, lastError: this.lastError };
  }
}

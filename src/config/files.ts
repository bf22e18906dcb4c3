/** File names Vigil keeps in its data directory. */
export const DB_FILE = "slashing-protection.sqlite";
/** The sealed (one-unlock) key store. */
export const KEY_STORE_FILE = "keys.vigil";
/** Bearer token of the Keymanager API. */
export const API_TOKEN_FILE = "api-token.txt";

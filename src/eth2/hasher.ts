/**
 * SHA-256 for SSZ merkleization: the native hashtree hasher (SIMD) instead of the pure-JS
 * default, as Lodestar itself does. Same digests, several times faster for hash_tree_root.
 */
import { setHasher } from "@chainsafe/persistent-merkle-tree";
import { hasher } from "@chainsafe/persistent-merkle-tree/hasher/hashtree";

setHasher(hasher);

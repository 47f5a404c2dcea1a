import { MemoryStorage } from "../../src/raft/storage.ts";
import { storageContract } from "./storage-contract.ts";

storageContract("MemoryStorage", (voters) => new MemoryStorage(voters));

// MemoryStorage is not durable; "reopening" it returns the same instance. This
// only checks that the durability tests are consistent with the contract itself.
storageContract("MemoryStorage (identity reopen)", (voters) => new MemoryStorage(voters), {
  reopen: (s) => s,
});

/** The transfer engine's public surface. */
export { startTransfer, Transfer } from './transfer.ts';
export type { TransferOptions, TransferResult, TransferSnapshot, TransferState, TransferMode } from './transfer.ts';
export { createPrefixReader } from './prefix-reader.ts';
export { LinkBudget, LinkShare } from './link-budget.ts';
export type { LinkBudgetOptions } from './link-budget.ts';
export { ConcurrencyController } from './concurrency.ts';
export { createHttpRangeSource, createTransferAgent } from './http-range-source.ts';
export type { HttpRangeSource, HttpRangeSourceOptions } from './http-range-source.ts';
export { rangeSourceFrom } from './range-source.ts';
export type { RangeSource, RangeResponse, ChunkDigests, ResponseHeaders } from './range-source.ts';
export { chunkSizeFor, planChunks, planMissing } from './chunk-plan.ts';
export * from './errors.ts';

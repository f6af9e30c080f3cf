// Runs before every test file of every package (see index.js).
//
// vitest's test worker answers its RPC with the main process only when the event loop turns. A
// file of CPU-bound tests that never wait on I/O keeps the loop busy from its first test to its
// last, and under load (turbo runs the packages' suites side by side on two cores) that can pass
// vitest's 60 s RPC timeout and fail the run although every test passed. One turn of the loop
// after each test keeps those answers flowing.
import { afterEach } from 'vitest';

afterEach(() => new Promise((resolve) => setImmediate(resolve)));

"""paypos benchmarks: run by a command, printing numbers (never asserted in tests)."""

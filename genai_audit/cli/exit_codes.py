"""Exit codes of every command: 0 ok, 1 a check found a problem, 2 usage or environment
error (a module of its own so that `genai-audit --help` imports nothing heavier)."""

EXIT_OK, EXIT_PROBLEM, EXIT_ERROR = 0, 1, 2

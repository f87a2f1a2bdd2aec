"""The sans-I/O core: pure functions and state machines; time comes in, effects go out."""

"""pesabot's tests: a package, so `conftest` is imported once, as `tests.conftest`, wherever it is named from."""

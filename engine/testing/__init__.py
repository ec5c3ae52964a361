"""YAML test cases: mocked connector responses, recorded calls, and readable comparisons."""

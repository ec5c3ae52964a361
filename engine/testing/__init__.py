"""YAML test cases and diffs of two config roots: mocked connector responses, recorded calls, and
readable comparisons."""

"""Loading a config root: located YAML, validation with located diagnostics, settings, cross-file checks.

yamlsource.py   YAML with every node's position       diagnostic.py   a located finding
validation.py   pydantic errors back to YAML nodes     report.py       text, JSON, GitHub printers
settings.py     mesbridge.yaml and MESBRIDGE_*         root.py         the whole root: a Project
references.py   names that must exist across files
"""

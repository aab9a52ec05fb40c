"""Reports: ``report.json`` (schema-checked), and its renderings as a table, Markdown, HTML and JUnit.

Takes a run record and its task results; gives the report document and the files written
into the run folder.
"""

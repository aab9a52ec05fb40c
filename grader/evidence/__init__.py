"""Evidence: what in the variants' runs and files says a speedup was gamed rather than earned.

Takes the ``VariantRun`` of each variant and the submitted files; gives flags with one line
of evidence each (catalogue and kinds in ``grader.evidence.flags``).
"""

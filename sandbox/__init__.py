"""What runs beside untrusted code in the sandbox: the worker and its wire protocol.

Nothing here may import ``grader``: inside a container only this package exists.
"""

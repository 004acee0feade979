"""`dualcap-demo`: the real operator on a local sandbox cluster, through an accelerated day.

It lives beside the sandbox, not in the operator, because it uses both: the operator's
package must not import the sandbox.
"""

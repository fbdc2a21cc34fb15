"""What the agent and the coordinator share that is not the wire: one log format.

The two programs import nothing of each other (import-linter holds them independent); this
package imports neither of them.
"""

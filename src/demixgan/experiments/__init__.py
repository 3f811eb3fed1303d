"""Experiments and demos: runs that train, separate and report in one command."""

"""The performance suite, its workloads and scripts: run from the checkout, never installed.

A package so that the scripts, the fresh processes they start and the tests import the
workloads as `benchmarks.workloads`, from the checkout at hand.
"""

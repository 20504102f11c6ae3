"""Printing graphs: ``dprint`` (tree), ``pprint`` (infix) and ``to_dot`` (Graphviz)."""


def dprint(obj, file=None):
    raise NotImplementedError


def pprint(var):
    raise NotImplementedError


def to_dot(obj):
    raise NotImplementedError

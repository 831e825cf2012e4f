"""The book's own implementations of the networks it teaches.

Import from the submodule that holds the idea, e.g. ``from cnnbook.models.resnet import
resnet18``; each submodule is one family (see the module docstrings).
"""

"""Shared by every test folder: this folder on sys.path, so tests can `import helpers`."""

"""The reload engine behind `hotmode run`: supervisor, zygote, workers and the watcher.

Kept import-light on purpose: the zygote and the workers import submodules of this package, and
nothing here may pull in the watcher (a thread) or the supervisor's machinery.
"""

"""Packages for setuptools: the repository's top-level folders install under ``evolve``.

``evaluators/``, ``problems/`` and ``prompts/`` stay where a reader expects them in the
checkout, but install as ``evolve.evaluators``, ``evolve.problems`` and ``evolve.prompts``:
the distribution adds one import name, ``evolve``.  Computed here (not listed in
pyproject.toml) so that a new verifier package cannot be forgotten.
"""

from setuptools import find_packages, setup

MAPPED = ("evaluators", "problems", "prompts")

packages = find_packages(include=["evolve", "evolve.*"])
package_dir = {}
for top in MAPPED:
    package_dir[f"evolve.{top}"] = top
    packages += [f"evolve.{name}" for name in find_packages(include=[top, f"{top}.*"])]

setup(packages=packages, package_dir=package_dir)

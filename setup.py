"""The default plugins live in plugins/ but install as the `navigator_plugins` package."""

from setuptools import find_packages, setup

core = find_packages(include=["navigator", "navigator.*"])
builtin = ["navigator_plugins", *(f"navigator_plugins.{name}" for name in find_packages("plugins"))]

setup(packages=core + builtin, package_dir={"navigator_plugins": "plugins"})

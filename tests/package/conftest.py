"""tests/package holds the installer proof, tests/package/proof.py: a root-only script that
installs and removes the .deb, run by `make package-test`, never by pytest."""

collect_ignore_glob = ["*.py"]

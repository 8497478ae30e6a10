"""Old module paths that the docs named before the core moved into sub-packages (issue 26); each module here
replaces itself with the module that now holds the code, so both names are the same object."""

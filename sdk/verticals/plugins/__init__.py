"""The plugin contract: hook specifications, pack and task specs, registries, the plugin manager that loads packs
from the `verticals` entry-point group, the built-in task types, heads and trainers, and option descriptions."""

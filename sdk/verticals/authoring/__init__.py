"""Pack authoring: the `new-pack` scaffold and its templates (the conformance kit and test helpers stay at
`verticals.conformance` and `verticals.testing`, where packs import them)."""

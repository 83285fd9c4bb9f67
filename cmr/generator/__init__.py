"""CMR-TARGET: drafting the impression of a CMR exam sentence by sentence with a transformer decoder that
cross-attends to the frozen CMR-CLIP exam tokens.

    from cmr.model.checkpoint import load_model
    from cmr.generator import Decoding, load_generator

    clip = load_model()                                   # the CLIP model that makes the exam tokens
    gen = load_generator("runs/target/best.pt", "shipped")  # refuses a generator trained on other CLIP weights
    tokens, pad = clip.exam_tokens(pixels, mask)          # [1, 1+T, W], [1, 1+T]
    for sentence in gen.generate(tokens, pad, Decoding(strategy="beam", beam_width=4)):
        print(sentence)                                   # streamed as each sentence is complete

Training: `cmr train-generator --config target_small --data DIR --out RUN` (`train_generator`).
"""

from cmr.generator.checkpoint import (
    GeneratorCheckpointError,
    load_generator,
    read_generator_checkpoint,
    save_generator,
)
from cmr.generator.config import (
    DecoderConfig,
    GeneratorTrainConfig,
    TargetConfig,
    apply_overrides,
    list_target_configs,
    load_target_config,
)
from cmr.generator.decoder import ReportDecoder
from cmr.generator.decoding import Decoding, greedy_batch, stream_sentences
from cmr.generator.features import TokenFeatures, build_token_features
from cmr.generator.model import TargetGenerator
from cmr.generator.vocab import ReportVocab

__all__ = [
    "DecoderConfig",
    "Decoding",
    "GeneratorCheckpointError",
    "GeneratorTrainConfig",
    "ReportDecoder",
    "ReportVocab",
    "TargetConfig",
    "TargetGenerator",
    "TokenFeatures",
    "apply_overrides",
    "build_token_features",
    "greedy_batch",
    "list_target_configs",
    "load_generator",
    "load_target_config",
    "read_generator_checkpoint",
    "save_generator",
    "stream_sentences",
]


def __getattr__(name: str):  # noqa: ANN202 - train_generator pulls in the CLIP trainer; import it lazily
    if name in ("train_generator", "GeneratorTrainResult", "GeneratorTrainingError"):
        from cmr.generator import train

        return getattr(train, name)
    raise AttributeError(name)

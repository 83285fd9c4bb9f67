"""CMR-CLIP: the exam and report encoders of one embedding space.

    model = load_model()                       # the shipped small checkpoint (or load_model("run/best.pt"))
    v = embed_studies(model, ["study_dir"])    # [1, D] unit vectors
    t = embed_texts(model, ["dilated LV"])      # [1, D]; cosine similarity = v @ t.T
"""

from cmr.model.checkpoint import DEFAULT_CHECKPOINT, CheckpointError, create_model, load_model, save_checkpoint
from cmr.model.clip import CMRCLIP
from cmr.model.config import Config, ImageEncoderConfig, ModelConfig, TextEncoderConfig, TrainConfig, load_config
from cmr.model.inference import embed_exam_arrays, embed_exams, embed_studies, embed_texts

__all__ = [
    "CMRCLIP", "DEFAULT_CHECKPOINT", "CheckpointError", "Config", "ImageEncoderConfig", "ModelConfig",
    "TextEncoderConfig", "TrainConfig", "create_model", "embed_exam_arrays", "embed_exams", "embed_studies",
    "embed_texts", "load_config", "load_model", "save_checkpoint",
]

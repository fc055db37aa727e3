"""The training configuration layer (below ``engine``; imports nothing from ``engine``, ``cli``,
``inference`` or ``experiments``).

One job per file:

- ``options``: :func:`option` (one option's declaration) and the walks over all of them;
- ``schema``: the dataclasses, every field declared once;
- ``checks``: single-option rules that are not a choice or a bound;
- ``coerce``: dict ↔ dataclass (strict reader, tolerant reader of saved configs, writer);
- ``yaml_files``: where configs live, the safe YAML reader, the ``config.yaml`` writer;
- ``layering``: defaults < config < recipe < flags < ``--set``; the dotted-key splitter;
- ``models``: ``--model`` family switching, model building, the size-divisor check;
- ``labels``: ``data.labels`` and the model options it implies;
- ``validate``: validation derived from the declarations;
- ``flags``: the ``train`` flags derived from the declarations.
"""

from __future__ import annotations

from medspikeformer.config.checks import MAX_TRAIN_SIZE
from medspikeformer.config.coerce import (
    config_from_dict,
    config_to_dict,
    model_section_to_dict,
    read_known_config,
)
from medspikeformer.config.flags import (
    add_option_flag,
    add_option_flags,
    overrides_from_args,
    resume_flags,
)
from medspikeformer.config.labels import label_options, label_spec
from medspikeformer.config.layering import (
    dotted_to_nested,
    load_config,
    merge_dicts,
    parse_set_option,
)
from medspikeformer.config.models import (
    SHARED_MODEL_OPTIONS,
    build_model_from_config,
    check_size_divisor,
    model_options_for,
    same_model_family,
    switch_model,
)
from medspikeformer.config.options import (
    Option,
    iter_options,
    option,
    option_keys,
    resume_may_change,
)
from medspikeformer.config.schema import (
    INIT_FROM_TWIN,
    AlignConfig,
    DataConfig,
    ModelConfig,
    OptimConfig,
    SchedulerConfig,
    TeacherConfig,
    TrainConfig,
    TrainLoopConfig,
)
from medspikeformer.config.validate import check_finite, validate_config
from medspikeformer.config.yaml_files import (
    CONFIG_DIR,
    MAX_CONFIG_BYTES,
    ConfigWriteError,
    find_config_file,
    read_yaml,
    safe_yaml_load,
    save_config,
)

__all__ = [
    "CONFIG_DIR",
    "INIT_FROM_TWIN",
    "MAX_CONFIG_BYTES",
    "MAX_TRAIN_SIZE",
    "SHARED_MODEL_OPTIONS",
    "AlignConfig",
    "ConfigWriteError",
    "DataConfig",
    "ModelConfig",
    "OptimConfig",
    "Option",
    "SchedulerConfig",
    "TeacherConfig",
    "TrainConfig",
    "TrainLoopConfig",
    "add_option_flag",
    "add_option_flags",
    "build_model_from_config",
    "check_finite",
    "check_size_divisor",
    "config_from_dict",
    "config_to_dict",
    "dotted_to_nested",
    "find_config_file",
    "iter_options",
    "label_options",
    "label_spec",
    "load_config",
    "merge_dicts",
    "model_options_for",
    "model_section_to_dict",
    "option",
    "option_keys",
    "overrides_from_args",
    "parse_set_option",
    "read_known_config",
    "read_yaml",
    "resume_flags",
    "resume_may_change",
    "safe_yaml_load",
    "same_model_family",
    "save_config",
    "switch_model",
    "validate_config",
]

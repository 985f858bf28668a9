# hepchain: five HEP machine-learning studies as one reproducible DAG.
# Main job: snakemake results/vh/binning.json --cores 8
import os
import sys

from snakemake.utils import min_version

min_version("8.0")

configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# A --configfile replaces the default wholesale (its samples must not leak into
# a user's analysis); --config key=value still applies on top.
if workflow.overwrite_configfiles:
    from snakemake.utils import update_config as _update_config
    import yaml as _yaml

    _user = {}
    for _f in workflow.overwrite_configfiles:
        _update_config(_user, _yaml.safe_load(open(_f)) or {})
    _update_config(_user, dict(workflow.config_settings.config))
    config.clear()
    config.update(_user)


# Validate against workflow/schemas/config.schema.yaml: defaults filled in,
# an unknown or misspelt key stops here with one line naming it.
sys.path.insert(0, os.path.join(workflow.basedir, "src"))
from hepchain.config import config_hash, validate_config
from hepchain.errors import ConfigError

try:
    _validated = validate_config(config)
except ConfigError as _exc:
    sys.exit(f"hepchain config error: {_exc}")
config.clear()
config.update(_validated)
CONFIG_HASH = config_hash(config)


include: "workflow/rules/common.smk"
include: "workflow/rules/generate.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/detector.smk"
include: "workflow/rules/vh.smk"
include: "workflow/rules/studies.smk"


if config.get("recoil") is not None:

    include: "workflow/rules/recoil.smk"


rule all:
    input:
        "results/vh/binning.json",

from services.common.migrate import run_env
from services.mirror.store import metadata

run_env(metadata)

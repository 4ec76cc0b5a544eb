from services.common.migrate import run_env
from services.fees.store import metadata

run_env(metadata)

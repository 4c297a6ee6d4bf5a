"""Run by the old-datasets venv: load every config of each export folder given, read every
Parquet file with that venv's pyarrow, and print what came out as JSON.

    python old_datasets_loader.py CACHE_DIR FOLDER...
"""

import json
import sys
from pathlib import Path

import datasets
import pyarrow.parquet as pq
import yaml


def columns(schema):
    return [(field.name, str(field.type)) for field in schema]


def main(cache: str, folders: list[str]) -> None:
    report = {"datasets": datasets.__version__, "loaded": {}, "parquet": {}}
    for folder in folders:
        meta = yaml.safe_load((Path(folder) / "README.md").read_text().split("---\n")[1])
        for config in meta["configs"]:
            name = config["config_name"]
            rows = datasets.load_dataset(folder, name, split="train", cache_dir=cache)
            report["loaded"][f"{Path(folder).name}:{name}"] = {"rows": rows.num_rows, "columns": columns(rows.data.schema)}
            path = Path(folder) / config["data_files"][0]["path"]
            if path.suffix == ".parquet":
                report["parquet"][f"{Path(folder).name}:{name}"] = columns(pq.read_table(path).schema)
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])

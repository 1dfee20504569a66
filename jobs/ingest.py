"""spark-submit entry point: `faerslake ingest`.

    spark-submit --py-files dist/faerslake.zip --packages io.delta:delta-spark_4.2_2.13:4.4.0 \
        jobs/ingest.py --conf-file conf/pipeline.yaml ...
"""

import sys

from faerslake.cli import main

if __name__ == "__main__":
    sys.exit(main(command="ingest"))

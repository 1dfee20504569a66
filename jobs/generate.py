"""spark-submit entry point: `faerslake generate`.

    spark-submit --py-files dist/faerslake.zip --packages io.delta:delta-spark_4.2_2.13:4.4.0 \
        jobs/generate.py --conf-file conf/pipeline.yaml ...
"""

import sys

from faerslake.cli import main

if __name__ == "__main__":
    sys.exit(main(command="generate"))

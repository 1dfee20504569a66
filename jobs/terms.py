"""spark-submit entry point: `faerslake terms`.

    spark-submit --py-files dist/faerslake.zip --packages io.delta:delta-spark_4.2_2.13:4.4.0 \
        jobs/terms.py --warehouse wh --study conf/studies/botox_depression.yaml --output out/terms
"""

import sys

from faerslake.cli import main

if __name__ == "__main__":
    sys.exit(main(command="terms"))

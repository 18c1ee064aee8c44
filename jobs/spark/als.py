"""Explicit ALS with Spark MLlib on a train/test split, for parity with
movierec's embedded ALS (`movierec eval --engine spark` submits it).

    spark-submit jobs/spark/als.py --train TRAIN.csv --test TEST.csv --out RESULT.json \
        [--rank 50] [--iterations 15] [--reg 0.12] [--seed 42] [--no-center]

TRAIN and TEST are CSV files with the header `user_id,movie_id,rating`
(ids must fit a 32-bit int, as MLlib requires). The job trains MLlib's
`org.apache.spark.ml.recommendation.ALS` (through py4j, so numpy is not
needed; pyspark.ml.recommendation.ALS wraps the same class) (explicit feedback, `rank`, `maxIter`,
`regParam`, `seed`, `coldStartStrategy="nan"`), predicts every test rating and
writes one JSON object to OUT (a local path) and to stdout:

    {"rmse", "mae", "n_train", "n_test", "cold" (test ratings of a user or movie
     not in TRAIN), "fit_seconds", "iterations", "seconds_per_iteration"
     (= fit_seconds / iterations), "rank", "reg", "seed", "centered",
     "global_mean", "spark_version", "master", "default_parallelism",
     "read_seconds", "predict_seconds"}

How it differs from the embedded model (crates/core/src/als.rs):

- Regularization is the same kind: MLlib scales regParam by the row's rating
  count (weighted-λ, Zhou et al. 2008), as movierec's `lambda` is.
- MLlib has no biases: movierec fits r = μ + b_u + b_i + p_u·q_i, MLlib
  r = p_u·q_i. By default the job trains on r - μ (μ the training mean) and adds
  μ back, so the factors only shrink towards the mean, not towards 0; user and
  item offsets must still be learnt by the factors, under λ. `--no-center`
  gives plain MLlib.
- Cold start: MLlib predicts NaN for a user or movie not in TRAIN
  (coldStartStrategy "nan"); the job predicts μ there. movierec adds the known
  side's bias to μ.
- Predictions are clamped to [--min-rating, --max-rating] (0.5–5, as movierec's).
- Spark stores factors in f32 and solves each row by Cholesky of the normal
  equations (its NNLS option is off); it shuffles factor blocks between
  iterations (`--blocks` user and item blocks; Spark's default 10).
- fit_seconds covers `ALS.fit` only: the CSV files are read and cached first.
"""
import argparse
import json
import os
import time

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--train", required=True, help="CSV with header user_id,movie_id,rating")
p.add_argument("--test", required=True, help="CSV with header user_id,movie_id,rating")
p.add_argument("--out", required=True, help="where the JSON result goes (a local path)")
p.add_argument("--rank", type=int, default=50)
p.add_argument("--iterations", type=int, default=15)
p.add_argument("--reg", type=float, default=0.12, help="regParam (λ per rating of the row)")
p.add_argument("--seed", type=int, default=42)
p.add_argument("--blocks", type=int, default=10, help="numUserBlocks and numItemBlocks")
p.add_argument("--no-center", action="store_true", help="train on raw ratings (plain MLlib)")
p.add_argument(
    "--warmup",
    action="store_true",
    help="fit once with maxIter=1 first (JVM warm-up); report (fit - that fit) / (iterations - 1) too",
)
p.add_argument("--min-rating", type=float, default=0.5)
p.add_argument("--max-rating", type=float, default=5.0)
args = p.parse_args()
if args.rank < 1 or args.iterations < 1 or args.reg < 0 or args.blocks < 1:
    p.error("--rank, --iterations and --blocks must be at least 1 and --reg non-negative")

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")

from pyspark.sql import DataFrame, SparkSession, functions as F  # noqa: E402
from pyspark.sql.types import DoubleType, IntegerType, LongType, StructField, StructType  # noqa: E402

spark = SparkSession.builder.appName("movierec-als").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")

schema = StructType(
    [
        StructField("user_id", LongType(), False),
        StructField("movie_id", LongType(), False),
        StructField("rating", DoubleType(), False),
    ]
)
INT_MAX = 2**31 - 1


def read(path, what):
    df = spark.read.csv(path, header=True, schema=schema, mode="FAILFAST")
    bad = df.filter(
        F.col("user_id").isNull()
        | F.col("movie_id").isNull()
        | F.col("rating").isNull()
        | (F.col("user_id") > INT_MAX)
        | (F.col("movie_id") > INT_MAX)
        | (F.col("user_id") < 0)
        | (F.col("movie_id") < 0)
    ).limit(1).collect()
    if bad:
        raise SystemExit(f"{what} {path}: row {bad[0]} is empty or has an id outside 0..{INT_MAX} (MLlib's ids are ints)")
    return df.select(
        F.col("user_id").cast(IntegerType()).alias("user_id"),
        F.col("movie_id").cast(IntegerType()).alias("movie_id"),
        F.col("rating"),
    )


clock = time.time()
train = read(args.train, "training file").cache()
test = read(args.test, "test file").cache()
n_train = train.count()
n_test = test.count()
if n_train == 0:
    raise SystemExit(f"training file {args.train} has no ratings")
global_mean = train.agg(F.avg("rating")).first()[0]
offset = 0.0 if args.no_center else global_mean
fit_input = train.withColumn("rating", F.col("rating") - F.lit(offset)).cache()
fit_input.count()
read_seconds = time.time() - clock

def estimator(iterations):
    # MLlib's Scala ALS through py4j: pyspark.ml's Python wrappers import
    # numpy, which a plain `pip install pyspark` lacks; the estimator is the same.
    return (
        spark._jvm.org.apache.spark.ml.recommendation.ALS()
        .setRank(args.rank)
        .setMaxIter(iterations)
        .setRegParam(float(args.reg))
        .setSeed(args.seed)
        .setUserCol("user_id")
        .setItemCol("movie_id")
        .setRatingCol("rating")
        .setPredictionCol("prediction")
        .setImplicitPrefs(False)
        .setNonnegative(False)
        .setColdStartStrategy("nan")
        .setNumUserBlocks(args.blocks)
        .setNumItemBlocks(args.blocks)
    )


warmup_fit_seconds = marginal = None
if args.warmup:
    clock = time.time()
    estimator(1).fit(fit_input._jdf)
    warmup_fit_seconds = time.time() - clock
clock = time.time()
model = estimator(args.iterations).fit(fit_input._jdf)
fit_seconds = time.time() - clock
if warmup_fit_seconds is not None and args.iterations > 1:
    marginal = (fit_seconds - warmup_fit_seconds) / (args.iterations - 1)

clock = time.time()
predicted = DataFrame(model.transform(test._jdf), spark)
cold = F.isnan(F.col("prediction")) | F.col("prediction").isNull()
estimate = F.when(cold, F.lit(global_mean)).otherwise(F.col("prediction") + F.lit(offset))
estimate = F.least(F.greatest(estimate, F.lit(args.min_rating)), F.lit(args.max_rating))
errors = predicted.select(cold.cast("int").alias("cold"), (estimate - F.col("rating")).alias("e"))
row = errors.agg(
    F.sum("cold").alias("cold"),
    F.avg(F.col("e") * F.col("e")).alias("mse"),
    F.avg(F.abs(F.col("e"))).alias("mae"),
).first()
predict_seconds = time.time() - clock

result = {
    "rmse": (row["mse"] ** 0.5) if row["mse"] is not None else None,
    "mae": row["mae"],
    "n_train": n_train,
    "n_test": n_test,
    "cold": int(row["cold"] or 0),
    "fit_seconds": fit_seconds,
    "iterations": args.iterations,
    "seconds_per_iteration": fit_seconds / args.iterations,
    "warmup_fit_seconds": warmup_fit_seconds,
    "marginal_seconds_per_iteration": marginal,
    "rank": args.rank,
    "reg": args.reg,
    "seed": args.seed,
    "blocks": args.blocks,
    "centered": not args.no_center,
    "global_mean": global_mean,
    "read_seconds": read_seconds,
    "predict_seconds": predict_seconds,
    "spark_version": spark.version,
    "master": spark.sparkContext.master,
    "default_parallelism": spark.sparkContext.defaultParallelism,
}
with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
print(json.dumps(result))
spark.stop()

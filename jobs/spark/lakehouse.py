"""movierec's lakehouse batch as a PySpark job: the same pipeline and results as
the embedded engine (`movierec batch run --engine spark` submits it).

    spark-submit jobs/spark/lakehouse.py --plan PLAN.json

The plan (written by movierec) names every input and output, so the job never
lists the lake itself and follows movierec's rules (compaction manifests, the
previous silver version):

    {"ratings": ["…/silver/ratings/run=R/part-00000.parquet", …],   # oldest first
     "bronze":  ["…/bronze/user-events/date=D/p000-….json", …],     # in stream order (.json or compacted .parquet)
     "outputs": {"ratings": DIR, "user_features": DIR, "movie_features": DIR, "top_movies": DIR,
                 "summary": DIR},  # the summary line is also written there when it is a URL
     "catalogue": PARQUET or null,  # movie_id, title, genres, year
     "min_ratings": 50, "top_n": 1000, "snapshot_date": "YYYY-MM-DD"}

Semantics: the latest rating per (user, movie) wins (newest time; equal times: the
later input, and within one input the later row); features per user and movie:
avg_rating, rating_count, std_dev (sample, 0 for one rating), last_update (newest
time); Bayesian top-N: R = mean, v = count, C = mean of R over rated movies,
score = v/(v+m)*R + m/(v+m)*C, v >= m, score desc then movie id asc.
Prints one JSON line of counts (and ratings per half-star value).
"""
import argparse
import json
import os
import time

from pyspark.sql import SparkSession, Window, functions as F
from pyspark.sql.types import DoubleType, LongType, StringType, StructField, StructType

p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
p.add_argument("--plan", required=True, help="a local file, or a URL Spark reads (s3://… on EMR)")
args = p.parse_args()

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
started = time.time()
spark = SparkSession.builder.appName("movierec-lakehouse").getOrCreate()
spark.sparkContext.setLogLevel("ERROR")
if "://" in args.plan:
    plan = json.loads(spark.read.text(args.plan, wholetext=True).first()[0])
else:
    with open(args.plan) as f:
        plan = json.load(f)
spark.conf.set("spark.sql.session.timeZone", "UTC")
spark.conf.set("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MILLIS")

# Input order, for "equal times: the later input wins".
inputs = list(enumerate(plan["ratings"] + plan["bronze"]))


def with_position(df):
    return (
        df.withColumn("input_path", F.col("_metadata.file_path"))
        .withColumn("_block", F.col("_metadata.file_block_start"))
        .withColumn("_row", F.monotonically_increasing_id())
    )


def normalise(path):
    # Spark reports file:/…; plans name plain paths or URLs.
    return path if "://" in path or path.startswith("file:") else "file:" + os.path.abspath(path)


order = spark.createDataFrame([(i, normalise(p)) for i, p in inputs], "input_index INT, input_path STRING")
frames = []
# Bronze compacted into Parquet has the silver ratings' schema. Read apart
# from the silver files: their folders (run=…, date=…) are different
# partition layouts, which one read refuses to mix.
bronze_json = [p for p in plan["bronze"] if not p.endswith(".parquet")]
bronze_parquet = [p for p in plan["bronze"] if p.endswith(".parquet")]
for paths in (plan["ratings"], bronze_parquet):
    if not paths:
        continue
    frames.append(
        with_position(spark.read.parquet(*paths)).select(
            F.col("user_id").cast("long"),
            F.col("movie_id").cast("long"),
            F.col("rating").cast("double"),
            F.unix_millis(F.col("timestamp")).alias("ts_ms"),
            "input_path", "_block", "_row",
        )
    )
if bronze_json:
    schema = StructType([
        StructField("user_id", LongType()), StructField("movie_id", LongType()),
        StructField("rating", DoubleType()), StructField("timestamp", StringType()),
    ])
    frames.append(
        with_position(spark.read.schema(schema).option("mode", "DROPMALFORMED").json(bronze_json)).select(
            "user_id", "movie_id", "rating",
            F.unix_millis(F.to_timestamp("timestamp")).alias("ts_ms"),
            "input_path", "_block", "_row",
        )
    )
if not frames:
    raise SystemExit("the plan names no input")
records = frames[0]
for frame in frames[1:]:
    records = records.unionByName(frame)
records = records.join(F.broadcast(order), "input_path", "left")
read = records.count()

w = Window.partitionBy("user_id", "movie_id").orderBy(
    F.col("ts_ms").desc(), F.col("input_index").desc(), F.col("_block").desc(), F.col("_row").desc()
)
latest = (
    records.withColumn("_n", F.row_number().over(w)).where("_n = 1")
    .select("user_id", "movie_id", "rating", "ts_ms")
    .cache()
)
kept = latest.count()

snapshot = F.to_date(F.lit(plan["snapshot_date"]))


def features(key):
    return (
        latest.groupBy(key).agg(
            F.avg("rating").alias("avg_rating"),
            F.count("rating").alias("rating_count"),
            F.coalesce(F.stddev_samp("rating"), F.lit(0.0)).alias("std_dev"),
            F.timestamp_millis(F.max("ts_ms")).alias("last_update"),
        )
        .withColumn("snapshot_date", snapshot)
        .orderBy(key)
    )


users = features("user_id").cache()
movies = features("movie_id").cache()
m = plan["min_ratings"]
C = movies.agg(F.avg("avg_rating")).first()[0]
scored = (
    movies.where(F.col("rating_count") >= m)
    .withColumn(
        "score",
        (F.col("rating_count") / (F.col("rating_count") + m)) * F.col("avg_rating")
        + (F.lit(float(m)) / (F.col("rating_count") + m)) * F.lit(C),
    )
    .orderBy(F.col("score").desc(), F.col("movie_id").asc())
    .limit(plan["top_n"])
)
rank = Window.orderBy(F.col("score").desc(), F.col("movie_id").asc())
top = scored.withColumn("rank", F.row_number().over(rank).cast("int"))
if plan.get("catalogue"):
    catalogue = spark.read.parquet(plan["catalogue"]).select("movie_id", "title", "genres", "year")
    top = top.join(F.broadcast(catalogue), "movie_id", "left")
else:
    top = (top.withColumn("title", F.lit(None).cast("string"))
           .withColumn("genres", F.lit(None).cast("string"))
           .withColumn("year", F.lit(None).cast("int")))
top = top.select(
    "rank", "movie_id", "title", "genres", F.col("year").cast("int"), "avg_rating", "rating_count",
    "score", F.lit(C).alias("global_mean"), "snapshot_date",
).orderBy("rank")

out = plan["outputs"]
(latest.select("user_id", "movie_id", "rating", F.timestamp_millis("ts_ms").alias("timestamp"))
 .orderBy("user_id", "movie_id").coalesce(1).write.mode("overwrite").parquet(out["ratings"]))
users.coalesce(1).write.mode("overwrite").parquet(out["user_features"])
movies.coalesce(1).write.mode("overwrite").parquet(out["movie_features"])
top.coalesce(1).write.mode("overwrite").parquet(out["top_movies"])
# Ratings per half-star value, for the serving database's distribution.
histogram = {str(int(round(r["rating"] * 2))): r["count"] for r in latest.groupBy("rating").count().collect()}
summary = json.dumps({
    "records_read": read, "ratings": kept, "histogram": histogram, "users": users.count(), "movies": movies.count(),
    "ranked": top.count(), "global_mean": C, "seconds": time.time() - started,
    "shuffle_partitions": int(spark.conf.get("spark.sql.shuffle.partitions")),
})
print(summary)
# In cluster mode (an EMR step) nobody reads the driver's stdout: the
# summary also goes next to the plan, where movierec picks it up.
if out.get("summary") and "://" in out["summary"]:
    spark.createDataFrame([(summary,)], "value STRING").coalesce(1).write.mode("overwrite").text(out["summary"])
spark.stop()

//! `movierec aws cost`: the seed's cost estimate as arithmetic, for the
//! seed's layout (one S3 object per event) beside movierec's (one object per
//! consumer batch). Unit prices come from a file the user can update
//! (`config/aws-prices.yaml`); nothing here calls AWS.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// AWS bills storage per GB of 2^30 bytes.
pub const GB: f64 = (1u64 << 30) as f64;

#[derive(Debug, thiserror::Error)]
pub enum CostError {
    #[error("{origin}: {message}")]
    Prices { origin: String, message: String },
    #[error("{origin} has no prices for region `{region}` (it has: {known}); add them to the file")]
    UnknownRegion {
        origin: String,
        region: String,
        known: String,
    },
}

/// Unit prices in USD for one region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prices {
    pub s3_storage_gb_month: f64,
    pub s3_put_per_1000: f64,
    pub s3_get_per_1000: f64,
    pub dynamodb_write_per_million: f64,
    pub dynamodb_read_per_million: f64,
    pub dynamodb_storage_gb_month: f64,
    pub emr_instance_hour: f64,
    pub ec2_instance_hour: f64,
    pub rds_instance_hour: f64,
    pub data_transfer_gb: f64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceBook {
    regions: BTreeMap<String, Prices>,
    #[serde(skip)]
    origin: String,
}

impl PriceBook {
    /// Parses a prices file; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Self, CostError> {
        let mut book: PriceBook = serde_yaml_ng::from_str(text).map_err(|e| CostError::Prices {
            origin: origin.into(),
            message: e.to_string(),
        })?;
        for (region, prices) in &book.regions {
            let values = serde_json::to_value(prices).expect("prices serialize");
            for (name, value) in values.as_object().expect("an object") {
                if value.as_f64().is_none_or(|v| v < 0.0 || !v.is_finite()) {
                    return Err(CostError::Prices {
                        origin: origin.into(),
                        message: format!(
                            "regions.{region}.{name}: expected a non-negative price, got {value}"
                        ),
                    });
                }
            }
        }
        book.origin = origin.into();
        Ok(book)
    }

    pub fn region(&self, region: &str) -> Result<&Prices, CostError> {
        self.regions
            .get(region)
            .ok_or_else(|| CostError::UnknownRegion {
                origin: self.origin.clone(),
                region: region.into(),
                known: self.regions.keys().cloned().collect::<Vec<_>>().join(", "),
            })
    }
}

/// What is stored and served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Workload {
    /// Rating events ingested (once) and kept.
    pub ratings: u64,
    pub users: u64,
    pub movies: u64,
    /// DynamoDB feature reads per month (the API's).
    pub reads_per_month: u64,
    /// Bytes of one raw event in the bronze layer (the seed: 1M ≈ 100 MB).
    pub bytes_per_rating: u64,
    /// Events per bronze object in movierec's layout (`kafka.max_batch_events`).
    pub events_per_object: u64,
    /// Bytes of a feature item in DynamoDB.
    pub feature_item_bytes: u64,
    /// Batch runs per month; each reads every bronze object once.
    pub batch_runs_per_month: u64,
    /// EMR cluster hours per month, and core nodes beside the master.
    pub emr_hours: f64,
    pub emr_core_nodes: u32,
    /// Web server (EC2) and serving database (RDS) hours per month.
    pub ec2_hours: f64,
    pub rds_hours: f64,
    pub transfer_gb: f64,
}

impl Default for Workload {
    fn default() -> Self {
        Self {
            ratings: 1_000_000,
            users: 100_000,
            movies: 10_000,
            reads_per_month: 1_000_000,
            bytes_per_rating: 100,
            events_per_object: 20_000,
            feature_item_bytes: 200,
            batch_runs_per_month: 30,
            emr_hours: 3.0,
            emr_core_nodes: 2,
            ec2_hours: 730.0,
            rds_hours: 730.0,
            transfer_gb: 0.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    /// One S3 object per event; each event updates the user and the movie
    /// feature items in DynamoDB.
    Seed,
    /// One S3 object per consumer batch; DynamoDB gets each batch's distinct
    /// users and movies once, plus a ratings row per event (what makes
    /// replays exact).
    Movierec,
}

/// One priced line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Line {
    pub service: &'static str,
    pub what: String,
    pub quantity: f64,
    pub unit: &'static str,
    pub unit_price: f64,
    pub cost: f64,
    /// Paid once, when the ratings are loaded (else per month).
    pub one_time: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    pub layout: Layout,
    pub lines: Vec<Line>,
    pub one_time: f64,
    pub monthly: f64,
}

/// Expected distinct keys among `draws` uniform draws from `keys`:
/// keys · (1 − e^(−draws/keys)).
pub fn distinct_expected(draws: u64, keys: u64) -> f64 {
    if keys == 0 {
        return 0.0;
    }
    let keys = keys as f64;
    keys * (1.0 - (-(draws as f64) / keys).exp())
}

pub fn estimate(w: &Workload, p: &Prices, layout: Layout) -> Estimate {
    let mut lines = Vec::new();
    let mut line = |service, what: String, quantity: f64, unit, unit_price: f64, one_time| {
        let per = match unit {
            "1,000 requests" => quantity / 1000.0,
            "million requests" => quantity / 1e6,
            _ => quantity,
        };
        lines.push(Line {
            service,
            what,
            quantity,
            unit,
            unit_price,
            cost: per * unit_price,
            one_time,
        });
    };
    let bronze_gb = (w.ratings * w.bytes_per_rating) as f64 / GB;
    let batch = w.events_per_object.max(1);
    let (objects, writes, write_note) = match layout {
        Layout::Seed => (
            w.ratings as f64,
            2.0 * w.ratings as f64,
            "the user and the movie item per event".to_string(),
        ),
        Layout::Movierec => {
            let batches = w.ratings.div_ceil(batch);
            let last = w.ratings - (batches.saturating_sub(1)) * batch;
            let touched = |keys| {
                (batches.saturating_sub(1)) as f64 * distinct_expected(batch, keys)
                    + distinct_expected(last, keys)
            };
            (
                batches as f64,
                w.ratings as f64 + touched(w.users) + touched(w.movies),
                format!(
                    "a ratings row per event + each batch's distinct users and movies ({batch} events per batch)"
                ),
            )
        }
    };
    line(
        "S3",
        match layout {
            Layout::Seed => "PUT bronze objects (one per event)".to_string(),
            Layout::Movierec => format!("PUT bronze objects ({batch} events each)"),
        },
        objects,
        "1,000 requests",
        p.s3_put_per_1000,
        true,
    );
    line(
        "DynamoDB",
        format!("writes: {write_note}"),
        writes,
        "million requests",
        p.dynamodb_write_per_million,
        true,
    );
    line(
        "S3",
        format!("storage: bronze, {} bytes per event", w.bytes_per_rating),
        bronze_gb,
        "GB-month",
        p.s3_storage_gb_month,
        false,
    );
    line(
        "S3",
        format!(
            "GET: every bronze object in {} batch runs",
            w.batch_runs_per_month
        ),
        objects * w.batch_runs_per_month as f64,
        "1,000 requests",
        p.s3_get_per_1000,
        false,
    );
    line(
        "DynamoDB",
        "reads".into(),
        w.reads_per_month as f64,
        "million requests",
        p.dynamodb_read_per_million,
        false,
    );
    let ratings_rows = match layout {
        Layout::Seed => 0.0,
        // user id, movie id, rating, time, partition, offset: ~60 bytes.
        Layout::Movierec => w.ratings as f64 * 60.0,
    };
    line(
        "DynamoDB",
        format!(
            "storage: {} feature items of {} bytes{}",
            w.users + w.movies,
            w.feature_item_bytes,
            if ratings_rows > 0.0 {
                " + ratings rows"
            } else {
                ""
            }
        ),
        ((w.users + w.movies) * w.feature_item_bytes) as f64 / GB + ratings_rows / GB,
        "GB-month",
        p.dynamodb_storage_gb_month,
        false,
    );
    line(
        "EMR",
        format!(
            "{} h × {} instances (master + {} core)",
            w.emr_hours,
            1 + w.emr_core_nodes,
            w.emr_core_nodes
        ),
        w.emr_hours * f64::from(1 + w.emr_core_nodes),
        "instance-hours",
        p.emr_instance_hour,
        false,
    );
    line(
        "EC2",
        "web server".into(),
        w.ec2_hours,
        "instance-hours",
        p.ec2_instance_hour,
        false,
    );
    line(
        "RDS",
        "serving database".into(),
        w.rds_hours,
        "instance-hours",
        p.rds_instance_hour,
        false,
    );
    line(
        "Data transfer",
        "out to the internet".into(),
        w.transfer_gb,
        "GB",
        p.data_transfer_gb,
        false,
    );
    let one_time = lines.iter().filter(|l| l.one_time).map(|l| l.cost).sum();
    let monthly = lines.iter().filter(|l| !l.one_time).map(|l| l.cost).sum();
    Estimate {
        layout,
        lines,
        one_time,
        monthly,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prices() -> Prices {
        let text = include_str!("../../../config/aws-prices.yaml");
        PriceBook::parse(text, "config/aws-prices.yaml")
            .unwrap()
            .region("us-east-1")
            .unwrap()
            .clone()
    }

    fn cost(estimate: &Estimate, service: &str, starts: &str) -> f64 {
        estimate
            .lines
            .iter()
            .find(|l| l.service == service && l.what.starts_with(starts))
            .unwrap_or_else(|| panic!("no {service} {starts}"))
            .cost
    }

    fn close(a: f64, b: f64) {
        assert!((a - b).abs() < 1e-9, "{a} != {b}");
    }

    #[test]
    fn the_seeds_s3_example_one_million_ratings() {
        // "1M ratings (~100 MB): storage $0.002/month, writes $5 (one-time)".
        let w = Workload {
            ratings: 1_000_000,
            ..Workload::default()
        };
        let seed = estimate(&w, &prices(), Layout::Seed);
        close(cost(&seed, "S3", "storage"), 100_000_000.0 / GB * 0.023); // $0.00214
        assert_eq!(format!("{:.3}", cost(&seed, "S3", "storage")), "0.002");
        close(cost(&seed, "S3", "PUT"), 5.0); // 1,000,000 PUTs at $0.005/1,000
        // Batched: 50 objects of 20,000 events.
        let ours = estimate(&w, &prices(), Layout::Movierec);
        close(cost(&ours, "S3", "PUT"), 50.0 / 1000.0 * 0.005);
        // 30 batch runs read every object: 30M GETs against 1,500.
        close(cost(&seed, "S3", "GET"), 30_000.0 * 0.0004);
        close(cost(&ours, "S3", "GET"), 1.5 * 0.0004);
    }

    #[test]
    fn the_seeds_dynamodb_example_100k_users_1m_reads() {
        // "100k users, 1M reads/month: reads $0.25" (and a write per user: $0.125).
        let w = Workload {
            ratings: 0,
            users: 100_000,
            movies: 0,
            reads_per_month: 1_000_000,
            ..Workload::default()
        };
        let seed = estimate(&w, &prices(), Layout::Seed);
        close(cost(&seed, "DynamoDB", "reads"), 0.25);
        close(100_000.0 / 1e6 * prices().dynamodb_write_per_million, 0.125);
        // 100,000 items of 200 bytes: 0.0186 GB at $0.25.
        close(cost(&seed, "DynamoDB", "storage"), 20_000_000.0 / GB * 0.25);
    }

    #[test]
    fn the_seeds_seven_day_bill() {
        // Chapter 5.1: EC2 and RDS 168 h, EMR master 3 h + 2 core × 3 h,
        // 1 GB in S3, 1,000 requests, 2 GB out: $8.66.
        let w = Workload {
            ratings: 1000,
            bytes_per_rating: GB as u64 / 1000,
            users: 0,
            movies: 0,
            reads_per_month: 0,
            batch_runs_per_month: 0,
            emr_hours: 3.0,
            emr_core_nodes: 2,
            ec2_hours: 168.0,
            rds_hours: 168.0,
            transfer_gb: 2.0,
            ..Workload::default()
        };
        let seed = estimate(&w, &prices(), Layout::Seed);
        close(cost(&seed, "EC2", "web"), 3.864);
        close(cost(&seed, "RDS", "serving"), 2.856);
        close(cost(&seed, "EMR", "3 h"), 1.728);
        close(cost(&seed, "Data transfer", "out"), 0.18);
        close(cost(&seed, "S3", "PUT"), 0.005);
        let total = seed.one_time + seed.monthly - cost(&seed, "DynamoDB", "writes"); // the bill has no DynamoDB
        assert_eq!(format!("{total:.2}"), "8.66");
    }

    #[test]
    fn batches_touch_fewer_items_than_events() {
        // 20,000 uniform draws over 100,000 users: 100,000·(1 − e^−0.2).
        close(
            distinct_expected(20_000, 100_000),
            100_000.0 * (1.0 - (-0.2f64).exp()),
        );
        close(distinct_expected(5, 0), 0.0);
        let w = Workload::default();
        let ours = estimate(&w, &prices(), Layout::Movierec);
        let writes = ours
            .lines
            .iter()
            .find(|l| l.what.starts_with("writes"))
            .unwrap();
        let per_batch = distinct_expected(20_000, 100_000) + distinct_expected(20_000, 10_000);
        close(writes.quantity, 1_000_000.0 + 50.0 * per_batch);
    }

    #[test]
    fn bad_price_files_are_named() {
        let error = PriceBook::parse("regions:\n  x:\n    s3_storage_gb_month: -1\n", "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("p.yaml: "), "{error}");
        let text = include_str!("../../../config/aws-prices.yaml");
        let book = PriceBook::parse(text, "config/aws-prices.yaml").unwrap();
        let error = book.region("eu-west-9").unwrap_err().to_string();
        assert_eq!(
            error,
            "config/aws-prices.yaml has no prices for region `eu-west-9` (it has: us-east-1); add them to the file"
        );
        let negative = "regions:\n  r:\n    s3_storage_gb_month: -1\n    s3_put_per_1000: 0\n    s3_get_per_1000: 0\n    dynamodb_write_per_million: 0\n    dynamodb_read_per_million: 0\n    dynamodb_storage_gb_month: 0\n    emr_instance_hour: 0\n    ec2_instance_hour: 0\n    rds_instance_hour: 0\n    data_transfer_gb: 0\n";
        let error = PriceBook::parse(negative, "p.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("regions.r.s3_storage_gb_month: expected a non-negative price, got -1"),
            "{error}"
        );
    }
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.parse().unwrap()).collect();
    let p = movierec_datasets::synth::SynthParams { ratings: args[0], users: args[1], movies: args[2], seed: 42 };
    let t = std::time::Instant::now();
    let s = movierec_datasets::synth::generate(&p, std::path::Path::new(&std::env::var("OUT").unwrap()), false).unwrap();
    eprintln!("{s:?} in {:.2}s", t.elapsed().as_secs_f64());
}

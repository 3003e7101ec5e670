//! Model layer benchmarks: training time per epoch on 5,000 windows, and scoring time per
//! window (one run through the ring, as live detection does, and batched, as offline scoring
//! does). Default architecture (hidden 64, 1 layer), libtorch single-threaded.
//!
//!     cargo bench --bench model
//!
//! Figures measured are recorded in docs/model.md.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use netanom::detect::score::ScoreRing;
use netanom::model::train::synthetic::{normal_windows, syn_flood_window};
use netanom::model::{train, TrainOptions};

fn bench_train(c: &mut Criterion) {
    let windows = normal_windows(5_000, 1);
    let opts = TrainOptions {
        epochs: 1,
        ..Default::default()
    };
    let mut g = c.benchmark_group("train");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    // One epoch over the 4,000 training windows (3,998 runs, batch 64) plus scoring the 1,000
    // validation windows, the min–max fit and the model set-up.
    g.bench_function("epoch_5000_windows", |b| {
        b.iter(|| black_box(train(black_box(&windows), &opts, |_| {}).expect("training")))
    });
    g.finish();
}

fn bench_score(c: &mut Criterion) {
    let windows = normal_windows(2_000, 2);
    let trained = train(
        &windows,
        &TrainOptions {
            epochs: 3,
            ..Default::default()
        },
        |_| {},
    )
    .expect("training");
    let stream = normal_windows(1_000, 3);
    let norm = trained
        .normalizer
        .transform_all(&stream)
        .expect("normalise");

    let mut g = c.benchmark_group("score");
    g.throughput(Throughput::Elements(1));
    // Live path: normalise one window, shift the ring, score the run of three.
    let mut ring = ScoreRing::new(
        netanom::model::LstmAutoencoder::from_safetensors(
            trained.model.architecture(),
            &trained.model.to_safetensors().expect("weights"),
        )
        .expect("model"),
        trained.normalizer.clone(),
    );
    let mut i = 0usize;
    g.bench_function("ring_push_per_window", |b| {
        b.iter(|| {
            i = (i + 1) % stream.len();
            black_box(ring.push(black_box(&stream[i])).expect("score"))
        })
    });
    // The model alone on one normalised run.
    let run = [norm[10], norm[11], norm[12]];
    g.bench_function("model_score_one_run", |b| {
        b.iter(|| black_box(trained.model.score(black_box(&run)).expect("score")))
    });
    // A flood run (values far outside [0, 1]) costs the same.
    let flood = trained
        .normalizer
        .transform(&syn_flood_window(&stream[12]))
        .expect("normalise");
    let frun = [norm[10], norm[11], flood];
    g.bench_function("model_score_one_flood_run", |b| {
        b.iter(|| black_box(trained.model.score(black_box(&frun)).expect("score")))
    });
    g.finish();

    let mut g = c.benchmark_group("score_batch");
    g.throughput(Throughput::Elements(norm.len() as u64 - 2));
    g.bench_function("1000_windows", |b| {
        b.iter(|| {
            black_box(
                trained
                    .model
                    .score_windows(black_box(&norm))
                    .expect("score"),
            )
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    // Criterion's plots need system fonts; this crate's plotters is built without them.
    config = Criterion::default().without_plots();
    targets = bench_train, bench_score
}
criterion_main!(benches);

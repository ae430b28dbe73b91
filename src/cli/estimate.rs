//! `attnjoule estimate`: what the next phrase of a long conversation costs, per attention policy.

use crate::cli::out::{out, outln};

use anyhow::{bail, Context};
use attnjoule::estimate::{
    analytical, calibrate, estimate_regimes, model::ModelSpec, policy, policy::Policy, policy::PolicyParams,
    Conversation, Options, Report, RowStatus,
};
use attnjoule::plot::{side_by_side, HLine, LinePlot, Series};
use attnjoule::profile::Profile;
use std::path::PathBuf;

#[derive(clap::Args)]
pub struct Args {
    /// Model preset (dense-1t, llama-3.1-70b, llama-3.1-405b, deepseek-v3) or a .toml/.json file.
    #[arg(long, default_value = "dense-1t")]
    model: std::ffi::OsString,
    /// Profile JSON from `attnjoule sweep`; default: the bundled analytical H100 SXM profile.
    #[arg(long)]
    profile: Option<PathBuf>,
    /// A bundled analytical (datasheet roofline) profile instead: h100 (the default) or h200.
    #[arg(long, value_enum)]
    gpu: Option<Gpu>,
    /// Conversations decoded together; a list gives one table each (both regimes by default).
    #[arg(long, default_value = "1,64", value_delimiter = ',')]
    batch: Vec<usize>,
    /// Conversation tokens per minute (225 is about 150 spoken words).
    #[arg(long, default_value_t = 225.0, allow_negative_numbers = true)]
    tpm: f64,
    /// Tokens per phrase.
    #[arg(long, default_value_t = 50)]
    phrase: usize,
    /// Minutes into the conversation to report.
    #[arg(long, default_value = "5,55,205,305,505", value_delimiter = ',', allow_negative_numbers = true)]
    minutes: Vec<f64>,
    /// Policies: all, or a list of them.
    #[arg(long, value_delimiter = ',', default_value = "all", value_parser = policy_arg())]
    policies: Vec<PolicyArg>,
    /// Fixed GPU count (at most a node, or whole nodes); default: sized from memory.
    #[arg(long)]
    gpus: Option<usize>,
    /// Largest deployment the sizing may choose.
    #[arg(long, default_value_t = 4096)]
    max_gpus: usize,
    #[arg(long, default_value_t = 8)]
    gpus_per_node: usize,
    /// Fraction of each GPU's memory kept free.
    #[arg(long, default_value_t = 0.10, allow_negative_numbers = true)]
    headroom: f64,
    /// Watts of a GPU that waits (pipeline stages); default: the profile's idle power.
    #[arg(long, allow_negative_numbers = true)]
    wait_watts: Option<f64>,
    /// How the policies that keep a cache (kv-cache, window, block-sparse, budget) store it: bf16,
    /// or fp8 (e4m3 with a bf16 scale per token and KV head). Overrides the model's own KV element
    /// size; fp8 decode is costed from the profile's fp8 points, else from its bf16 ones by bytes.
    #[arg(long, value_enum)]
    kv_dtype: Option<attnjoule::paged::KvDtype>,
    /// Sliding window width, tokens.
    #[arg(long, default_value_t = 4096)]
    window: usize,
    /// Fixed context budget, tokens.
    #[arg(long, default_value_t = 8192)]
    budget: usize,
    /// Budget tokens refreshed (prefilled) by retrieval each phrase.
    #[arg(long, default_value_t = 1024)]
    refresh: usize,
    /// Joules of the retrieval itself per phrase and conversation.
    #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
    retrieval_joules: f64,
    /// Print JSON instead of the table.
    #[arg(long, conflicts_with = "csv")]
    json: bool,
    /// Print CSV instead of the table.
    #[arg(long)]
    csv: bool,
    /// Where to write the SVG plot (Wh per phrase vs minute); the default is under cargo's
    /// git-ignored target/ folder.
    #[arg(long, default_value = "target/estimate.svg")]
    plot: PathBuf,
    /// Do not write the plot.
    #[arg(long)]
    no_plot: bool,
    /// Write the analytical profile of --gpu (what profiles/<gpu>-sxm-analytical.json holds) to
    /// PATH and exit.
    #[arg(long, value_name = "PATH")]
    write_analytical: Option<PathBuf>,
    /// A CSV of measured serving points (profiles/calibration/README.md): fit the machine's free
    /// figures (achieved bandwidth and FLOP/s, overheads, memory- and compute-bound power) to
    /// them, print the fit and its residual per point, and label every table "calibrated on N
    /// points".
    #[arg(long, value_name = "CSV")]
    calibration: Option<PathBuf>,
    /// With --calibration: also refit without each point, and without each model's points, and
    /// print how well what was left out is predicted.
    #[arg(long, requires = "calibration")]
    calibration_report: bool,
    /// With --calibration-report: where to write the SVG of measured, fitted and held-out values
    /// against batch size (not with --no-plot).
    #[arg(long, default_value = "target/calibration.svg", requires = "calibration_report")]
    calibration_plot: PathBuf,
}

/// The bundled analytical profiles `--gpu` picks from.
#[derive(Clone, Copy, clap::ValueEnum)]
pub(crate) enum Gpu {
    H100,
    H200,
}

impl Gpu {
    pub(crate) fn sheet(self) -> analytical::Datasheet {
        match self {
            Gpu::H100 => analytical::H100_SXM,
            Gpu::H200 => analytical::H200_SXM,
        }
    }
}

pub fn run(a: Args) -> anyhow::Result<()> {
    if a.gpu.is_some() && a.profile.is_some() {
        bail!("--gpu picks a bundled analytical profile and --profile reads one from a file: give one of them");
    }
    let sheet = a.gpu.unwrap_or(Gpu::H100).sheet();
    // No output may replace an input of this command (the profile or the model file it reads).
    let model_path = std::path::Path::new(&a.model);
    let inputs: Vec<&std::path::Path> =
        a.profile.iter().chain(&a.calibration).map(|p| p.as_path()).chain([model_path]).collect();
    if let Some(path) = &a.write_analytical {
        attnjoule::files::refuse_overwrite("--write-analytical", path, &inputs)?;
    }
    if !a.no_plot && a.write_analytical.is_none() {
        attnjoule::files::refuse_overwrite("--plot", &a.plot, &inputs)?;
        if a.calibration_report {
            attnjoule::files::refuse_overwrite("--calibration-plot", &a.calibration_plot, &inputs)?;
        }
    }
    if let Some(path) = &a.write_analytical {
        analytical::profile(&sheet).save(path)?;
        outln!(
            "wrote the ANALYTICAL {} SXM profile (datasheet roofline, not measured) to {}",
            sheet.key.to_uppercase(),
            path.display()
        );
        return Ok(());
    }
    let (profile, source) = match &a.profile {
        Some(p) => (Profile::load(p)?, p.display().to_string()),
        None => (analytical::bundled_for(&sheet)?, format!("bundled profiles/{}", sheet.file)),
    };
    let model = ModelSpec::resolve(&a.model)?;
    let policies: Vec<Policy> = if a.policies.contains(&PolicyArg::All) {
        policy::ALL.to_vec()
    } else {
        a.policies
            .iter()
            .filter_map(|p| match p {
                PolicyArg::One(p) => Some(*p),
                PolicyArg::All => None,
            })
            .collect()
    };
    let conv = Conversation { tokens_per_minute: a.tpm, phrase_tokens: a.phrase, minutes: a.minutes.clone() };
    let opts = Options {
        gpus: a.gpus,
        max_gpus: a.max_gpus,
        gpus_per_node: a.gpus_per_node,
        headroom: a.headroom,
        wait_watts: a.wait_watts,
        params: PolicyParams {
            window: a.window,
            budget: a.budget,
            refresh: a.refresh,
            retrieval_joules: a.retrieval_joules,
        },
        kv_dtype: a.kv_dtype,
        ..Options::default()
    };
    let mut fit = None;
    let mut held = vec![];
    if let Some(path) = &a.calibration {
        let points = calibrate::read(path)?;
        if !a.json && !a.csv {
            let n = points.len();
            outln!("calibration: fitting {n} point{} of {} ...", if n == 1 { "" } else { "s" }, path.display());
        }
        let f = calibrate::fit(&points)?;
        if a.calibration_report {
            held.push(calibrate::hold_out(&points, calibrate::Scheme::LeaveOneOut)?);
            let models = points.iter().map(|p| &p.model).collect::<std::collections::BTreeSet<_>>().len();
            if models > 1 {
                held.push(calibrate::hold_out(&points, calibrate::Scheme::LeaveModelOut)?);
            }
        }
        fit = Some((f, points));
    }
    let opts = Options { calibration: fit.as_ref().map(|(f, _)| f.applied()), ..opts };
    let reports = estimate_regimes(&profile, &source, model, &conv, opts, &a.batch, &policies)?;
    if a.json {
        let mut v = serde_json::to_value(&reports)?;
        if let (Some((f, _)), Some(list)) = (&fit, v.as_array_mut()) {
            for r in list.iter_mut().filter_map(|r| r.as_object_mut()) {
                r.insert("calibration_fit".into(), serde_json::to_value(f)?);
                r.insert("calibration_hold_out".into(), serde_json::to_value(&held)?);
            }
        }
        outln!("{}", serde_json::to_string_pretty(&v)?);
    } else if a.csv {
        print_csv(&reports);
    } else {
        if let Some((f, points)) = &fit {
            print_fit(f, points, &held);
        }
        print_tables(&reports);
    }
    if !a.no_plot {
        if let Some(dir) = a.plot.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        attnjoule::files::write_atomic(&a.plot, plot_svg(&reports).as_bytes())?;
        if !a.json && !a.csv {
            outln!("plot: {}", a.plot.display());
        }
        if let (Some((f, points)), true) = (&fit, a.calibration_report) {
            if let Some(dir) = a.calibration_plot.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            attnjoule::files::write_atomic(&a.calibration_plot, calibration_svg(f, points, &held).as_bytes())?;
            if !a.json && !a.csv {
                outln!("calibration plot: {}", a.calibration_plot.display());
            }
        }
    }
    Ok(())
}

/// One `--policies` value: `all` or a policy.
#[derive(Clone, Copy, PartialEq)]
enum PolicyArg {
    All,
    One(Policy),
}

/// The policies' names (and `all`) as the argument's possible values.
fn policy_arg() -> impl clap::builder::TypedValueParser<Value = PolicyArg> {
    use clap::builder::TypedValueParser;
    use clap::ValueEnum;
    let names = std::iter::once("all").chain(Policy::value_variants().iter().map(|p| p.name()));
    clap::builder::PossibleValuesParser::new(names.map(clap::builder::PossibleValue::new))
        .map(|s| Policy::value_variants().iter().find(|p| p.name() == s).map_or(PolicyArg::All, |p| PolicyArg::One(*p)))
}

fn sig(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if a >= 1e5 {
        format!("{v:.3e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else if a >= 1e-3 {
        format!("{v:.4}")
    } else {
        format!("{v:.2e}")
    }
}

fn print_tables(reports: &[Report]) {
    let r0 = &reports[0];
    let c = &r0.conversation;
    outln!("attnjoule estimate: the next phrase of a conversation, by attention policy");
    outln!("{}", r0.profile.line());
    outln!(
        "model: {} ({:.3e} parameters, {:.3e} active per token); {}",
        r0.model,
        r0.total_params,
        r0.active_params,
        r0.model_source
    );
    outln!(
        "GPU: {} TFLOP/s bf16, {} GB/s, {} W board, {} W waiting, {:.0} GB",
        r0.hardware.bf16_tflops,
        r0.hardware.hbm_gbps,
        r0.hardware.board_watts,
        r0.hardware.wait_watts,
        r0.hardware.gpu_memory_bytes / 1e9
    );
    print_machine(&r0.hardware.machine);
    if r0.calibration.is_none() {
        outln!(
            "  not calibrated: --calibration profiles/calibration/h100-serving.csv fits these to measured servers \
             (docs/ESTIMATOR.md)"
        );
    }
    outln!(
        "conversation: {} tokens/min, {}-token phrases ({:.1} s to say; a person at 20 W: {} Wh per phrase)",
        c.tokens_per_minute,
        c.phrase_tokens,
        c.phrase_seconds(),
        sig(r0.human_wh_per_phrase)
    );
    outln!(
        "KV cache: {} MiB per token per conversation ({} GiB at minute {}){}",
        sig(r0.kv_gib_per_token * 1024.0),
        sig(r0.kv_gib_per_token * c.context_at(c.minutes.iter().copied().fold(0.0, f64::max)) as f64),
        c.minutes.iter().copied().fold(0.0, f64::max),
        match r0.kv_dtype {
            Some(attnjoule::paged::KvDtype::Fp8) =>
                ", fp8 e4m3 with per-token scales (kv-cache, window, block-sparse, budget)",
            Some(attnjoule::paged::KvDtype::Bf16) => ", bf16",
            None => "",
        }
    );
    outln!();
    out!("{}", wh_table(reports));
    for r in reports {
        outln!();
        if let Some(c) = &r.calibration {
            outln!("{}", c.label);
        }
        let regime = if r.batch == 1 {
            "one conversation at a time: every token reads all weights".to_string()
        } else {
            format!("{} conversations decoded together: weights shared, each reads its own cache", r.batch)
        };
        outln!("batch {} ({regime})", r.batch);
        outln!(
            "{:<13} {:>6} {:>8} {:>10} {:>10} {:>10} {:>6} {:>9} {:>10} {:>11}",
            "policy",
            "minute",
            "context",
            "s/phrase",
            "J/token",
            "Wh/phrase",
            "attn%",
            "KV GiB",
            "GPUs",
            "cum. Wh"
        );
        for row in &r.rows {
            let gpus = format!("{}x{}", row.tp, row.pp);
            let head = format!("{:<13} {:>6} {:>8}", row.policy.name(), sig(row.minute), row.context);
            match &row.status {
                RowStatus::Ok => outln!(
                    "{head} {:>10} {:>10} {:>10} {:>6} {:>9} {:>10} {:>11}{}",
                    sig(row.seconds_per_phrase.unwrap_or(f64::NAN)),
                    sig(row.joules_per_token.unwrap_or(f64::NAN)),
                    sig(row.wh_per_phrase.unwrap_or(f64::NAN)),
                    format!("{:.1}", 100.0 * row.attention_share.unwrap_or(f64::NAN)),
                    sig(row.kv_gib),
                    gpus,
                    row.cumulative_wh.map_or("-".into(), sig),
                    if row.extrapolated { " *" } else { "" }
                ),
                RowStatus::DoesNotFit { need_gib_per_gpu, have_gib_per_gpu } => outln!(
                    "{head}   does not fit: needs {} GiB per GPU, {} usable on {gpus} GPUs (KV {} GiB)",
                    sig(*need_gib_per_gpu),
                    sig(*have_gib_per_gpu),
                    sig(row.kv_gib)
                ),
                RowStatus::NoData { reason } => outln!("{head}   no data: {reason}"),
            }
        }
    }
    outln!();
    outln!("GPUs = tensor x pipeline; * = read outside the profile's measured contexts (extrapolated)");
    outln!("KV GiB = one conversation's cache (recurrent: its state); cum. Wh = the whole conversation so far");
    for n in &r0.notes {
        outln!("note: {n}");
    }
}

/// The answer in one table: Wh per phrase (one conversation's share), a row per policy, a column
/// per minute, the regimes (batch sizes) side by side; `-` where the context does not fit or the
/// profile has no data. The README quotes it (tests/readme.rs keeps the two equal).
pub fn wh_table(reports: &[Report]) -> String {
    let Some(r0) = reports.first() else { return String::new() };
    let cell = |r: &Report, policy, minute: f64| {
        r.rows
            .iter()
            .find(|row| row.policy == policy && row.minute == minute)
            .and_then(|row| row.wh_per_phrase)
            .map_or("-".to_string(), sig)
    };
    let minutes = &r0.conversation.minutes;
    let mut grid: Vec<Vec<String>> = vec![];
    let mut head = vec!["minute".to_string()];
    for _ in reports {
        head.extend(minutes.iter().map(|m| if m.fract() == 0.0 { format!("{m:.0}") } else { sig(*m) }));
    }
    grid.push(head);
    let mut policies: Vec<Policy> = vec![];
    for row in &r0.rows {
        if !policies.contains(&row.policy) {
            policies.push(row.policy);
        }
    }
    for &p in &policies {
        let mut row = vec![p.name().to_string()];
        for r in reports {
            row.extend(minutes.iter().map(|m| cell(r, p, *m)));
        }
        grid.push(row);
    }
    let cols = grid[0].len();
    let width: Vec<usize> = (0..cols).map(|c| grid.iter().map(|r| r[c].len()).max().unwrap_or(0) + 2).collect();
    let first = width[0].max(13);
    let group = |b: usize| width[1 + b * minutes.len()..][..minutes.len()].iter().sum::<usize>();
    let mut out = match &r0.calibration {
        Some(c) => format!("{}\n", c.label),
        None => String::new(),
    };
    out += &format!(
        "Wh per {}-token phrase, one conversation's share (a person saying it at 20 W: {} Wh; - = does not fit)\n",
        r0.conversation.phrase_tokens,
        sig(r0.human_wh_per_phrase)
    );
    let mut titles = format!("{:<first$}", "");
    for (b, r) in reports.iter().enumerate() {
        let t = if r.batch == 1 {
            "batch 1: one conversation".to_string()
        } else {
            format!("batch {}: served together", r.batch)
        };
        titles += &format!("{:>w$}", t, w = group(b));
    }
    out += titles.trim_end();
    out.push('\n');
    for row in &grid {
        let mut line = format!("{:<first$}", row[0]);
        for (c, v) in row.iter().enumerate().skip(1) {
            line += &format!("{:>w$}", v, w = width[c]);
        }
        out += line.trim_end();
        out.push('\n');
    }
    out
}

/// The machine's figures and where each comes from.
fn print_machine(m: &attnjoule::estimate::machine::Machine) {
    let f =
        |v: String, fig: &attnjoule::estimate::machine::Figure| format!("{v} ({}: {})", fig.origin.label(), fig.basis);
    let (p, e) = (&m.power, &m.efficiency);
    outln!("work no profile point covers (src/estimate/machine.rs):");
    outln!("  power, compute-bound: {}", f(format!("{:.0} W", p.compute_watts.value), &p.compute_watts));
    outln!("  power, memory-bound: {}", f(format!("{:.0} W", p.memory_watts.value), &p.memory_watts));
    outln!("  power, waiting: {}", f(format!("{:.0} W", p.wait_watts.value), &p.wait_watts));
    outln!("  achieved bandwidth: {}", f(format!("{:.1}% of peak", 100.0 * e.bandwidth.value), &e.bandwidth));
    outln!("  achieved FLOP/s: {}", f(format!("{:.1}% of peak", 100.0 * e.flops.value), &e.flops));
    outln!("  overhead per step: {}", f(format!("{} ms", sig(1e3 * e.step_overhead_s.value)), &e.step_overhead_s));
    outln!(
        "  tensor-parallel all-reduce: {}",
        f(
            format!("{} us per ring step, {} GB/s links", sig(1e6 * e.allreduce_hop_s.value), m.link_bytes / 1e9),
            &e.allreduce_hop_s
        )
    );
}

/// The fit: its parameters, each point's residual, and the held-out predictions.
fn print_fit(f: &calibrate::Fit, points: &[calibrate::Measured], held: &[calibrate::HoldOut]) {
    outln!("{} (least squares on log errors; bounds and method: docs/ESTIMATOR.md)", f.label);
    for ((name, (lo, hi), _), v) in calibrate::PARAMS.iter().zip(f.params.to_vec()) {
        outln!("  {name}: {} (bounds {lo}..{hi})", sig(v));
    }
    for (source, tokens) in &f.prompts {
        outln!(
            "  mean prompt of {source} (not published; fitted, one value for these points): {tokens:.0} tokens (bounds \
             0..{})",
            calibrate::PROMPT_RANGE.1
        );
    }
    let residual_table = |title: &str, rs: &[calibrate::Residual]| {
        outln!("{title}");
        outln!(
            "  {:>5} {:<16} {:>4} {:>6} {:>8} {:<8} {:>10} {:>10} {:>8}",
            "line",
            "model",
            "GPUs",
            "batch",
            "context",
            "metric",
            "measured",
            "predicted",
            "error"
        );
        for r in rs {
            outln!(
                "  {:>5} {:<16} {:>4} {:>6} {:>8} {:<8} {:>10} {:>10} {:>7.1}%",
                r.line,
                r.model,
                r.gpus,
                r.batch,
                r.context,
                r.metric,
                sig(r.measured),
                sig(r.predicted),
                100.0 * (r.log_error.exp() - 1.0)
            );
        }
    };
    residual_table(
        &format!("fit residuals (rms log error {:.3}; error = predicted / measured - 1):", f.rms_log_error),
        &f.residuals,
    );
    for h in held {
        let what = match h.scheme {
            calibrate::Scheme::LeaveOneOut => "each point predicted by a fit on all the others",
            calibrate::Scheme::LeaveModelOut => "each model's points predicted by a fit on the other models' points",
        };
        residual_table(
            &format!(
                "held out ({what}): median |log error| {:.3} ({:.0}%), max {:.3}",
                h.median_abs_log_error,
                100.0 * (h.median_abs_log_error.exp() - 1.0),
                h.max_abs_log_error
            ),
            &h.residuals,
        );
    }
    outln!("sources: {}", calibrate::sources(points).join("; "));
    outln!();
}

fn print_csv(reports: &[Report]) {
    outln!(
        "profile_kind,gpu,profile_created,model,batch,policy,minute,context,status,seconds_per_phrase,joules_per_token,\
         wh_per_phrase,attention_share,kv_gib,mem_gib_per_gpu,gpus,tp,pp,cumulative_wh,extrapolated,calibration"
    );
    let o = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:e}"));
    for r in reports {
        for row in &r.rows {
            let status = match &row.status {
                RowStatus::Ok => "ok",
                RowStatus::DoesNotFit { .. } => "does_not_fit",
                RowStatus::NoData { .. } => "no_data",
            };
            outln!(
                "{:?},\"{}\",{},{},{},{},{},{},{},{},{},{},{},{:e},{:e},{},{},{},{},{},\"{}\"",
                format!("{:?}", r.profile.kind).to_lowercase(),
                r.profile.gpu.replace('"', "'"),
                r.profile.created,
                r.model,
                r.batch,
                row.policy.name(),
                row.minute,
                row.context,
                status,
                o(row.seconds_per_phrase),
                o(row.joules_per_token),
                o(row.wh_per_phrase),
                o(row.attention_share),
                row.kv_gib,
                row.mem_gib_per_gpu,
                row.gpus,
                row.tp,
                row.pp,
                o(row.cumulative_wh),
                row.extrapolated,
                r.calibration.as_ref().map_or(String::new(), |c| c.label.replace('"', "'"))
            );
        }
    }
}

/// One panel per batch size: Wh per phrase against minute, a line per policy, log-log, with the
/// human speaker's reference line.
pub fn plot_svg(reports: &[Report]) -> String {
    // One y range for every panel, so the regimes compare at a glance.
    let ys = reports.iter().flat_map(|r| {
        r.curves.iter().flat_map(|c| c.points.iter().map(|p| p.1)).chain(std::iter::once(r.human_wh_per_phrase))
    });
    let (lo, hi) = ys.filter(|y| *y > 0.0).fold((f64::INFINITY, 0.0f64), |(a, b), y| (a.min(y), b.max(y)));
    let y_range = (lo.is_finite() && hi > 0.0).then_some((lo, hi));
    let plots: Vec<LinePlot> = reports
        .iter()
        .map(|r| LinePlot {
            title: format!("{}: Wh per {}-token phrase, batch {}", r.model, r.conversation.phrase_tokens, r.batch),
            subtitle: Some(match &r.calibration {
                Some(c) => format!("{}; {}", r.profile.short(), c.label),
                None => r.profile.short(),
            }),
            x_label: "minute of the conversation (a line ends where its context no longer fits)".into(),
            y_label: "Wh per phrase (one conversation's share)".into(),
            log_x: true,
            log_y: true,
            series: r
                .curves
                .iter()
                .map(|c| Series { name: c.policy.name().to_string(), points: c.points.clone() })
                .collect(),
            hlines: vec![HLine {
                y: r.human_wh_per_phrase,
                label: format!("a person speaking the phrase at 20 W: {} Wh", sig(r.human_wh_per_phrase)),
            }],
            y_range,
            ..Default::default()
        })
        .collect();
    side_by_side(&plots)
}

/// Two panels, J/token and s/token against batch size (log-log): per model the measured values,
/// the fit's, and those predicted with the model held out.
pub fn calibration_svg(f: &calibrate::Fit, points: &[calibrate::Measured], held: &[calibrate::HoldOut]) -> String {
    let mut models: Vec<&str> = vec![];
    for p in points {
        if !models.contains(&p.spec.name.as_str()) {
            models.push(&p.spec.name);
        }
    }
    let by_model = held.iter().find(|h| h.scheme == calibrate::Scheme::LeaveModelOut);
    let panel = |metric: &str, unit: &str| {
        let mut series = vec![];
        for m in &models {
            let pick = |rs: &[calibrate::Residual], measured: bool| -> Vec<(f64, f64)> {
                let mut v: Vec<(f64, f64)> = rs
                    .iter()
                    .filter(|r| r.model == *m && r.metric == metric)
                    .map(|r| (r.batch as f64, if measured { r.measured } else { r.predicted }))
                    .collect();
                v.sort_by(|a, b| a.0.total_cmp(&b.0));
                v
            };
            series.push(Series { name: format!("{m} measured"), points: pick(&f.residuals, true) });
            series.push(Series { name: format!("{m} fitted"), points: pick(&f.residuals, false) });
            if let Some(h) = by_model {
                series.push(Series { name: format!("{m} held out"), points: pick(&h.residuals, false) });
            }
        }
        LinePlot {
            title: format!("{metric} against batch size"),
            subtitle: Some(format!("{}; fitted: all points; held out: fitted without the model", f.label)),
            x_label: "sequences decoding together (batch)".into(),
            y_label: format!("{metric} ({unit})"),
            log_x: true,
            log_y: true,
            series,
            ..Default::default()
        }
    };
    side_by_side(&[panel("J/token", "GPU energy per output token, J"), panel("s/token", "time per output token, s")])
}

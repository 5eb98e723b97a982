//! The demo: the whole chain in one process on embedded defaults: an embedded broker,
//! simulated devices of all four kinds, a gateway polling them, ingest with the default rule
//! pack, readings to rotated line-protocol files, and the web console with a registry of a
//! small synthetic town beside the simulated units.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway::sim::{SimPlan, Simulator};
use telemetry::AlertMessage;
use tokio::sync::{mpsc, watch};

use ingest::config::{
    BatchConfig, FilesConfig, HttpConfig, IngestConfig, MqttConfig, RegistryConfig, RulesConfig, StateConfig,
    WalConfig,
};
use ingest::console::{self, auth};
use ingest::server::Hooks;

pub struct DemoOptions {
    pub data_dir: PathBuf,
    pub run_for: Option<Duration>,
    pub broker: SocketAddr,
    pub elevators: usize,
    pub boilers: usize,
    pub water_meters: usize,
    pub charging_piles: usize,
    /// Where the console listens; a free port is used when this one is taken.
    pub console: SocketAddr,
}

/// The registry of the demo: a small synthetic town (a few units overdue), and the simulated
/// units, registered and in date.
fn demo_registry(sim: &Simulator, now_ms: i64) -> rules::Registry {
    let today = rules::Date::from_ms(now_ms, rules::date::CHINA_UTC_OFFSET_MS);
    let town = rules::registry::synthetic::generate(&rules::registry::synthetic::Options {
        units: 500,
        overdue: 3,
        today,
        seed: 2023,
    });
    let simulated = sim.devices().map(|d| {
        let mut u = rules::Unit::new(&d.id, &d.profile.kind);
        u.name = format!("演示 {} {}", d.profile.kind, d.index + 1);
        u.town = "东城街道".into();
        u.address = format!("演示路 {} 号", d.unit);
        u.commissioned = Some(rules::Date::from_days(today.days() - 3 * 365));
        u.last_inspection = Some(rules::Date::from_days(today.days() - 200));
        u.next_inspection = Some(rules::Date::from_days(today.days() + 165));
        u
    });
    rules::Registry::from_units(town.units().iter().cloned().chain(simulated))
}

fn line(alert: &AlertMessage) -> String {
    let t = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + Duration::from_millis(alert.ts.max(0) as u64),
    );
    let mark = format!("{:<8}", alert.status.as_str().to_uppercase());
    format!("{t}  {mark} [{}] {} {}: {}", alert.severity, alert.rule, alert.device, alert.summary)
}

pub async fn run(opts: DemoOptions, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let broker = crate::broker::pick_port(opts.broker)?;
    crate::broker::start(broker).map_err(anyhow::Error::msg)?;
    let mqtt_url = format!("mqtt://{broker}");

    let plan = SimPlan {
        counts: vec![
            ("elevator".into(), opts.elevators),
            ("boiler".into(), opts.boilers),
            ("water_meter".into(), opts.water_meters),
            ("charging_pile".into(), opts.charging_piles),
        ],
        fault_period: Duration::from_secs(40),
        fault_duration: Duration::from_secs(15),
        fault_delay: Duration::from_secs(5),
        fault_stagger: Duration::from_secs(4),
    };
    let sim = Arc::new(Simulator::new(&plan, telemetry::now_ms())?);
    let modbus = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let modbus_addr = modbus.local_addr()?;
    // The gateway's spool lives in the demo's folder, so runs in other folders never mix.
    let gateway_toml = sim.gateway_config("gw-demo", modbus_addr, &mqtt_url, Duration::from_secs(1))
        + &format!("\n[spool]\ndir = {:?}\n", opts.data_dir.join("spool").display().to_string());
    std::fs::create_dir_all(&opts.data_dir)?;
    std::fs::write(opts.data_dir.join("gateway.toml"), &gateway_toml)?;
    let gateway_cfg = gateway::GatewayConfig::from_toml(&gateway_toml)?;

    let registry_path = opts.data_dir.join("registry.csv");
    std::fs::write(&registry_path, demo_registry(&sim, telemetry::now_ms()).to_csv())?;
    let console_addr = crate::broker::pick_port(opts.console)?;
    let password = auth::random_token()[..12].to_string();
    let console = console::ConsoleConfig {
        users: vec![console::UserConfig {
            name: "admin".into(),
            role: console::Role::Admin,
            password_hash: auth::hash_password(&password).map_err(anyhow::Error::msg)?,
        }],
        ..Default::default()
    };

    let ingest_cfg = IngestConfig {
        mqtt: MqttConfig { client_id: Some("ingest-demo".into()), ..MqttConfig::new(&mqtt_url) },
        rules: RulesConfig::default(),
        tsdb: None,
        files: FilesConfig { dir: opts.data_dir.clone(), ..FilesConfig::default() },
        batch: BatchConfig::default(),
        wal: WalConfig { dir: opts.data_dir.join("wal"), ..WalConfig::default() },
        http: HttpConfig { listen: Some(console_addr) },
        registry: RegistryConfig {
            file: Some(registry_path.clone()),
            reject_unknown_devices: false,
            overdue_rate_every: Duration::from_secs(60),
            ..RegistryConfig::default()
        },
        state: StateConfig::default(),
        console,
        notify: Default::default(),
        limits: Default::default(),
        health: Default::default(),
    };

    println!("special-equipment telemetry demo");
    println!("  MQTT broker (embedded)   {mqtt_url}");
    println!("  Modbus TCP simulator     {modbus_addr}");
    for d in sim.devices() {
        println!("    unit {:>3}  {:<12} {:<14} {}", d.unit, d.id, d.profile.kind, d.profile.name);
    }
    println!("  gateway config           {}", opts.data_dir.join("gateway.toml").display());
    println!(
        "  rules                    built-in default pack ({} rules)",
        rules::default_pack().map_or(0, |s| s.rules.len())
    );
    println!("  readings (line protocol) {}", opts.data_dir.join("readings-*.lp").display());
    println!("  registry                 {}", registry_path.display());
    println!("  console                  http://{console_addr}/  user admin, password {password}");
    println!(
        "  watch it: mosquitto_sub -h {} -p {} -t 'events/alerts' -t 'telemetry/#' -v",
        broker.ip(),
        broker.port()
    );
    match opts.run_for {
        Some(d) => println!("running for {}; Ctrl-C stops it earlier\n", humantime::format_duration(d)),
        None => println!("Ctrl-C stops it\n"),
    }

    let (stop_tx, stop_rx) = watch::channel(false);
    // The simulated devices stop last, so the gateway's last polls are answered.
    let (sim_stop, sim_stop_rx) = watch::channel(false);
    let sim_task = tokio::spawn(gateway::sim::serve(modbus, sim.clone(), sim_stop_rx));
    let (alert_tx, mut alert_rx) = mpsc::unbounded_channel();
    let hooks = Hooks { alerts: Some(alert_tx), ..Hooks::default() };
    let stats = hooks.stats.clone();
    let ingest_task = tokio::spawn(ingest::server::run(ingest_cfg, hooks, stop_rx.clone()));
    let gateway_task = tokio::spawn(gateway::run(gateway_cfg, stop_rx.clone()));

    let until = async {
        match opts.run_for {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(until);
    let mut summary = tokio::time::interval(Duration::from_secs(10));
    summary.tick().await;
    loop {
        tokio::select! {
            _ = &mut until => break,
            _ = shutdown.changed() => break,
            // Due dates of the synthetic town's units are for the console, not this log.
            Some(alert) = alert_rx.recv() => if alert.gateway != rules::engine::REGISTRY_GATEWAY {
                println!("{}", line(&alert))
            },
            _ = summary.tick() => {
                let s = stats.lock().map(|s| s.clone()).unwrap_or_default();
                let kinds: Vec<String> = s.readings_by_kind.iter().map(|(k, n)| format!("{k} {n}")).collect();
                println!("readings so far: {} ({}); alerts fired {}, resolved {}", s.received - s.invalid, kinds.join(", "), s.alerts_firing, s.alerts_resolved);
            }
        }
    }
    println!("\nstopping");
    let _ = stop_tx.send(true);
    let _ = gateway_task.await;
    let _ = sim_stop.send(true);
    match ingest_task.await {
        Ok(Err(e)) => eprintln!("ingest: {e}"),
        Err(e) => eprintln!("ingest: {e}"),
        Ok(Ok(())) => {}
    }
    let _ = sim_task.await;
    while let Ok(alert) = alert_rx.try_recv() {
        if alert.gateway != rules::engine::REGISTRY_GATEWAY {
            println!("{}", line(&alert));
        }
    }
    let s = stats.lock().map(|s| s.clone()).unwrap_or_default();
    println!(
        "done: {} readings written to {}, {} alerts fired, {} resolved",
        s.received - s.invalid,
        opts.data_dir.display(),
        s.alerts_firing,
        s.alerts_resolved
    );
    Ok(())
}

//! Configuration and zone errors: one sentence naming the file (and line) and the fix.

use std::process::Command;

use sextant_systest::{Lab, binary};

use crate::EXAMPLE_ZONE;

fn check(daemon: &str, config: &std::path::Path) -> (bool, String) {
    let output = Command::new(binary(daemon).unwrap())
        .arg("--config")
        .arg(config)
        .arg("--check")
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn every_sample_config_is_valid_for_every_daemon_it_configures() {
    let samples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../samples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&samples).unwrap().flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        for (section, daemon) in [
            ("[listener]", "sextant-listener"),
            ("[authority]", "sextant-authority"),
            ("[transfer]", "sextant-transfer"),
            ("[resolver]", "sextant-resolver"),
        ] {
            if text.contains(section) {
                let (ok, stderr) = check(daemon, &path);
                assert!(ok, "{daemon} --check {}: {stderr}", path.display());
                checked += 1;
            }
        }
    }
    assert!(checked >= 8, "only {checked} sample checks ran");
}

#[test]
fn a_misspelled_key_names_file_key_and_fix() {
    let lab = Lab::new().unwrap();
    let config = lab
        .write(
            "bad.toml",
            "[listener]\nlisten = [\"127.0.0.1:0\"]\nbackend_timout = \"1s\"\n",
        )
        .unwrap();
    let (ok, stderr) = check("sextant-listener", &config);
    assert!(!ok);
    assert!(
        stderr.contains(&format!(
            "{}: `listener.backend_timout`: unknown key",
            config.display()
        )),
        "{stderr}"
    );
    assert!(stderr.contains("check the spelling"), "{stderr}");
}

#[test]
fn a_missing_zone_file_names_it() {
    let lab = Lab::new().unwrap();
    let config = lab
        .write("s.toml", "[authority]\ngrpc = \"unix:a.sock\"\n[[authority.zone]]\nname = \"example.com\"\nfile = \"nowhere.zone\"\n")
        .unwrap();
    let (ok, stderr) = check("sextant-authority", &config);
    assert!(!ok);
    assert!(
        stderr.contains(
            "nowhere.zone of zone example.com. does not exist; create it or fix the path"
        ),
        "{stderr}"
    );
}

#[test]
fn a_zone_syntax_error_names_file_and_line() {
    let lab = Lab::new().unwrap();
    let broken = EXAMPLE_ZONE.replace("www     IN A   192.0.2.80", "www     IN A   192.0.2.800");
    let config = lab.suite_config(&[("example.com", &broken)], "").unwrap();
    let (ok, stderr) = check("sextant-authority", &config);
    assert!(!ok);
    let zone = lab.path().join("zones/example.com.zone");
    assert!(
        stderr.contains(&format!(
            "zone example.com.: {}:5: bad A data",
            zone.display()
        )),
        "{stderr}"
    );
    // The daemon itself refuses to start with it, with the same sentence.
    let err = lab.start_authority(&config).unwrap_err().to_string();
    assert!(err.contains(":5: bad A data"), "{err}");
}

#[test]
fn a_broken_trust_anchor_file_stops_the_resolver_with_its_line() {
    let lab = Lab::new().unwrap();
    lab.write(
        "anchors",
        ". IN DS 20326 8 2 E06D44B80B8F1D39A95C0B0D7C65D08458E880409BBC683457104237C7F8EC8D\nwww. IN A 192.0.2.1\n",
    )
    .unwrap();
    let config = lab
        .write(
            "bad.toml",
            "[resolver]\ngrpc = \"unix:r.sock\"\ntrust_anchor_file = \"anchors\"\n",
        )
        .unwrap();
    let (ok, stderr) = check("sextant-resolver", &config);
    assert!(!ok, "a resolver must not start without its anchors");
    assert!(
        stderr.contains(
            "anchors:2: a A record is not a trust anchor; write only DS or DNSKEY records"
        ),
        "{stderr}"
    );
    // Without the file, the resolver says where trust starts.
    let config = lab
        .write("good.toml", "[resolver]\ngrpc = \"unix:r.sock\"\n")
        .unwrap();
    let output = Command::new(binary("sextant-resolver").unwrap())
        .arg("--config")
        .arg(&config)
        .arg("--check")
        .output()
        .unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("DNSSEC validation on; trust anchors: built-in root KSKs 20326 and 38696"),
        "{stdout}"
    );
}

//! The systemd unit in `deploy/` is one systemd accepts as it is: every directive known, every
//! value valid (`systemd-analyze verify`, from Debian's `systemd` package, which
//! `scripts/setup.sh` installs).

#[test]
fn the_systemd_unit_verifies_cleanly() {
    let unit = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/duet.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/duet\n"));
    for hardening in [
        "DynamicUser=yes",
        "StateDirectory=duet",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "LimitNOFILE=",
    ] {
        assert!(unit.contains(hardening), "{hardening}");
    }
    // verify checks that the program exists: point it at the binary just built.
    let dir = std::env::temp_dir().join(format!("duet-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("duet.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/duet", env!("CARGO_BIN_EXE_duet")),
    )
    .unwrap();
    let out = std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian package systemd) is installed");
    let said = String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(out.status.success(), "{said}");
    // Warnings (an unknown or misspelt directive is only a warning) fail the test too.
    assert!(!said.contains("duet.service"), "{said}");
}

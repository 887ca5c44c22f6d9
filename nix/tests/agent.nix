# NixOS VM test of the agent (run by `nix flake check`, checks.agent-vm).
#
# One machine with base.nix and the nix-gitops module follows a Git
# repository inside the VM (file://, a bare repo made at boot). The repo holds
# the stand-in flake of internal/testflake (the one fake on the Nix side: a
# full NixOS toplevel per commit would need nixpkgs inside the guest); the
# fixtures/ files are its per-commit flake.nix, kept current by
# internal/nixcheck, and its two scripts are read from internal/testflake. The
# agent applies them to a profile of its own, so the VM keeps running its
# real system while the agent builds, sets the profile, switches, runs the
# health gate and rolls back exactly as on a machine.
#
# It proves: the boot-time unit converges on its own and then stays off; a
# commit whose health check fails is rolled back to the previous
# generation; a good commit is applied; a force-push is refused.
{ pkgs, self }:

let
  fixtures = ./fixtures;
  # The stand-in's scripts, the very files the Go tests embed.
  builderScript = ../../internal/testflake/builder.sh;
  switchScript = ../../internal/testflake/switch.sh;
  recordDir = "/var/lib/testflake";
  profile = "/var/lib/nix-gitops-test/profiles/system";
  remote = "/srv/git/site.git";
  # Unhealthy when the generation under test says so in its version file.
  healthScript = pkgs.writeShellScript "testflake-health" ''
    version=$(${pkgs.coreutils}/bin/cat ${profile}/version)
    case "$version" in
      *unhealthy*) echo "health: $version is unhealthy on purpose" >&2; exit 1 ;;
    esac
  '';
  gitEnv = "HOME=/root GIT_CONFIG_NOSYSTEM=1 GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@t GIT_COMMITTER_NAME=t GIT_COMMITTER_EMAIL=t@t";
in
pkgs.testers.runNixOSTest {
  name = "nix-gitops-agent";

  nodes.machine = { lib, pkgs, ... }: {
    imports = [
      self.nixosModules.base
      self.nixosModules.nix-gitops
    ];

    virtualisation.memorySize = 2048;
    virtualisation.writableStore = true;

    # The stand-in toplevels are builtins-only derivations that call
    # /bin/mkdir and friends (as on Debian) and build without a sandbox.
    nix.settings.sandbox = false;
    systemd.tmpfiles.rules = map (tool: "L+ /bin/${tool} - - - - ${pkgs.coreutils}/bin/${tool}")
      [ "mkdir" "cat" "chmod" "mv" "sleep" "ln" "rm" ];

    environment.systemPackages = [ pkgs.git ];

    services.nix-gitops = {
      enable = true;
      flake = "git+file://${remote}?ref=main#machine";
      healthChecks.script = "${healthScript}";
      # Nothing in the VM may be degraded either; the check stays on.
      # The stand-in generations live beside the real system: the agent's
      # profile, current and booted system are the stand-in's own (its
      # switch keeps ${recordDir}/current-system, as activation keeps
      # /run/current-system), so it never compares them with the VM's.
      extraSettings = {
        inherit profile;
        currentSystem = "${recordDir}/current-system";
        bootedSystem = "${recordDir}/booted-system";
      };
    };

    # The "git server": a bare repository with the first commit, made at
    # boot before the agent's first-boot run.
    systemd.services.make-test-repo = {
      description = "Create the test Git repository";
      wantedBy = [ "multi-user.target" ];
      before = [ "nix-gitops-apply.service" ];
      requiredBy = [ "nix-gitops-apply.service" ];
      path = [ pkgs.git pkgs.coreutils ];
      serviceConfig = {
        Type = "oneshot";
        RemainAfterExit = true;
      };
      script = ''
        export ${gitEnv}
        mkdir -p ${recordDir} $(dirname ${profile}) /srv/git /root/work
        git init -q --bare -b main ${remote}
        git init -q -b main /root/work
        cp ${builderScript} /root/work/builder.sh
        cp ${switchScript} /root/work/switch.sh
        cp ${fixtures}/1-healthy/flake.nix /root/work/
        git -C /root/work add -A
        git -C /root/work commit -q -m "v1"
        git -C /root/work push -q ${remote} HEAD:refs/heads/main
      '';
    };
  };

  testScript = ''
    def current():
        return machine.succeed("cat ${recordDir}/current").strip()

    def profile_version():
        return machine.succeed("cat ${profile}/version").strip()

    def commit(fixture):
        machine.succeed(
            "export ${gitEnv}; cp ${fixtures}/" + fixture + "/flake.nix /root/work/ && "
            + "git -C /root/work add -A && git -C /root/work commit -q -m " + fixture + " && "
            + "git -C /root/work push -q ${remote} HEAD:refs/heads/main"
        )
        return machine.succeed("git -C /root/work rev-parse HEAD").strip()

    def apply():
        status, out = machine.execute("nix-gitops apply 2>&1")
        print(out)
        return status

    machine.wait_for_unit("multi-user.target")

    with subtest("the boot-time unit converges by itself"):
        machine.wait_until_succeeds("test -s ${recordDir}/current", timeout=600)
        assert profile_version() == "v1", profile_version()
        assert current() == machine.succeed("readlink -f ${profile}").strip()
        machine.succeed("systemctl is-active sshd.service")
        machine.succeed("systemctl show -p ExecMainStatus nix-gitops-apply.service | grep -qx ExecMainStatus=0")
        v1 = current()

    with subtest("after one success the boot-time unit stays off"):
        calls = machine.succeed("wc -l < ${recordDir}/calls.log")
        machine.succeed("systemctl start nix-gitops-apply.service")
        assert machine.succeed("wc -l < ${recordDir}/calls.log") == calls

    with subtest("a failing health check rolls back"):
        commit("2-unhealthy")
        assert apply() == 20, "want exit 20 (failed, rolled back)"
        assert profile_version() == "v1", profile_version()
        assert current() == v1, "the previous generation must be active again"
        machine.succeed("grep -q 'v2-unhealthy' ${recordDir}/calls.log")

    with subtest("a healthy commit is applied"):
        commit("3-healthy")
        assert apply() == 0, "want exit 0 (applied)"
        assert profile_version() == "v3", profile_version()
        v3 = current()

    with subtest("a force-push is refused"):
        first = machine.succeed("git -C /root/work rev-list --max-parents=0 HEAD").strip()
        machine.succeed("export ${gitEnv}; git -C /root/work push -q --force ${remote} " + first + ":refs/heads/main")
        assert apply() == 21, "want exit 21 (refused before switching)"
        assert profile_version() == "v3", profile_version()
        assert current() == v3
        machine.succeed("systemctl is-active sshd.service")
  '';
}

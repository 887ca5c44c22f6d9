# The agent's config file (/etc/nix-gitops/config.json) as a Nix value, from
# the services.nix-gitops option values. Pure builtins, so the nixcheck tests
# evaluate it with real nix and hand the JSON to the agent's own strict
# parser (internal/agent/config), which rejects unknown keys: the module and
# the agent cannot drift apart unnoticed.
cfg:
let
  # Drop nulls, empty lists and empty sets: the agent fills its defaults.
  clean = v:
    if builtins.isAttrs v then
      let
        kept = builtins.filter (n: let x = clean v.${n}; in !(x == null || x == [ ] || x == { }))
          (builtins.attrNames v);
      in
      builtins.listToAttrs (map (n: { name = n; value = clean v.${n}; }) kept)
    else v;
  # Recursive merge, right wins: extraSettings over the options' keys.
  merge = a: b: a // builtins.mapAttrs
    (n: v: if builtins.isAttrs v && builtins.isAttrs (a.${n} or null) then merge a.${n} v else v) b;
in
clean (merge {
  flake = cfg.flake;
  flakeTargetFile = cfg.flakeTargetFile;
  stateDir = cfg.stateDir;
  everyBoot = cfg.everyBoot;
  onKernelChange = cfg.onKernelChange;
  verify = {
    mode = if cfg.allowedSigners == null then "none" else cfg.verifyMode;
    allowedSigners = if cfg.allowedSigners == null then null else toString cfg.allowedSigners;
  };
  auth = {
    sshKeyFile = cfg.deployKeyFile;
    sshKnownHosts = if cfg.sshKnownHosts == null then null else toString cfg.sshKnownHosts;
    tokenFile = cfg.tokenFile;
    tokenUser = cfg.tokenUser;
  };
  timeouts = cfg.timeouts;
  health = {
    systemd = cfg.healthChecks.systemRunning;
    requiredUnits = cfg.healthChecks.requiredUnits;
    tcp = cfg.healthChecks.tcp;
    http = cfg.healthChecks.http;
    script = cfg.healthChecks.script;
    gitReachable = cfg.healthChecks.gitReachable;
    settle = cfg.healthChecks.settle;
  };
  metrics.textfile = cfg.metricsTextfile;
  log.format = cfg.logFormat;
} cfg.extraSettings)

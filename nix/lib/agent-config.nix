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
  # Public files given as Nix paths are copied into the store by the
  # interpolation, and the config file's text then refers to them, so they
  # are part of the system's closure (toString would leave a path into the
  # checkout, missing on the machine). Strings are kept as they are.
  storeFile = p: if p == null then null else if builtins.isPath p then "${p}" else p;
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
  onDrift = cfg.onDrift;
  reboot = {
    allow = cfg.reboot.allow;
    window = if cfg.reboot.window == null then null else { inherit (cfg.reboot.window) lower upper; };
  };
  rollout.enable = cfg.rollout.enable;
  floorCommit = cfg.floorCommit;
  verify = {
    mode = if cfg.allowedSigners == null then "none" else cfg.verifyMode;
    allowedSigners = storeFile cfg.allowedSigners;
    allCommits = if cfg.allowedSigners == null then null else cfg.verifyAllCommits;
  };
  auth = {
    sshKeyFile = cfg.deployKeyFile;
    sshKnownHosts = storeFile cfg.sshKnownHosts;
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

Feature: Local API and CLI
  The CLI talks to the local node over a REST API that listens on loopback
  only and needs the node's token. Every command exits 0 when it succeeds,
  1 when it is refused or fails and 2 on a usage error; a failure is one
  clear line on stderr, and -o json prints JSON.

  Background:
    Given the node alice is running

  Scenario: The API refuses to listen on a reachable address
    Given dave has a home
    When dave runs `dms run --listen /ip4/127.0.0.1/tcp/0 --api-listen 0.0.0.0:0`
    Then it is refused with "not a loopback address"

  Scenario: A request without the node's token is refused with 401
    When a program calls GET /api/v1/peers on alice's API without a token
    Then the API answers 401 with the code "unauthorized"

  Scenario: A request with a wrong token is refused with 401
    When a program calls GET /api/v1/peers on alice's API with the token "not-the-token-of-this-node"
    Then the API answers 401 with the code "unauthorized"

  Scenario: The health check needs no token
    When a program calls GET /api/v1/health on alice's API without a token
    Then the API answers 200

  Scenario: A request with the node's token is served
    When a program calls GET /api/v1/node on alice's API with the node's token
    Then the API answers 200
    And the answer contains "<alice.peer>"

  Scenario: An invocation the node refuses is answered 403 with its typed error
    When a program invokes "/dms/node/peers/list" on alice through alice's API, signed by a key alice does not trust
    Then the API answers 403 with the code "denied"

  Scenario Outline: Exit codes say success, refusal or usage error
    When alice runs `dms <command>`
    Then the command exits with <code>

    Examples:
      | command                         | code |
      | peers self                      | 0    |
      | config get no.such.key          | 1    |
      | onboard --ram 100TiB            | 1    |
      | invoke /public/hello --to nope  | 2    |
      | onboard --cpu lots              | 2    |
      | no-such-command                 | 2    |

  Scenario: A usage error is one line on stderr and nothing on stdout
    When alice runs `dms onboard --cpu lots`
    Then it is a usage error saying "--cpu: \"lots\" is not a CPU amount"

  Scenario Outline: Commands print JSON with -o json
    When alice runs `dms -o json <command>`
    Then the command succeeds
    And the output is JSON

    Examples:
      | command     |
      | version     |
      | peers self  |
      | peers list  |
      | resources   |
      | cap list    |
      | key list    |
      | deployments |

  Scenario: Without a running node, a command that needs one says how to start it
    Given dave has a home
    When dave runs `dms peers list`
    Then it is refused with "no running node"
    And the error says "dms --home"

  Scenario: The configuration is read and changed with dms config
    Given dave has a home
    When dave runs `dms config set p2p.mdns true`
    Then the command succeeds
    When dave runs `dms config get p2p.mdns`
    Then the output contains "true"
    When dave runs `dms config set p2p.no_such_key 1`
    Then the command fails with exit code 1

  Scenario: dms version names the build
    When alice runs `dms version`
    Then the command succeeds
    And the output contains "dms "

  Scenario: A job whose executor no provider offers waits, and the message says how to get one
    Given bob offers 1 CPU to alice's deployments, with the docker executor off

  @logs
  Scenario: deployment logs shows the tail, one stream, and timestamps
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=line-1, print=line-2, print=line-3, eprint=oops, print=line-4]}
      """
    And the deployment completes within 60 seconds
    When alice runs `dms deployment logs <deployment> --tail 2 --stderr`
    Then the command succeeds
    And the output is empty
    And the error says "oops"
    When alice runs `dms deployment logs <deployment> --tail 2`
    Then the output contains "line-4"
    And the output does not contain "line-2"
    When alice runs `dms deployment logs <deployment> --timestamps`
    Then the output has 4 lines
    And every line of the output starts with a timestamp
    When alice runs `dms deployment logs <deployment> --since 1h`
    Then the output contains "line-1"
    When alice runs `dms deployment logs <deployment> --since yesterday`
    Then it is refused with "want a duration (10m, 2h)"

  @docker @exec
  Scenario: deployment exec runs a command in a running container, with stdin, and exits with its code
    Given bob offers 1 CPU to alice's deployments
    And bob offers the docker executor
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        hello:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "dms-examples/hello:latest"}
      timeouts: {queue: 10m}
      """
    Then within 30 seconds the deployment is queued with the message "no provider offers executor docker (on a devnet: dms devnet up --executor "
    When alice runs `dms deployment status <deployment>`
    Then the output contains "no provider offers executor docker (on a devnet: dms devnet up --executor "

  Scenario: dms plan shows where an ensemble would land and why not elsewhere, and reserves nothing
    Given bob and carol each offer 1 CPU to alice's deployments
    And the ensemble "plan.yaml":
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm}
      """
    When alice runs `dms plan -f plan.yaml`
    Then the command succeeds
    And the output contains "1 of 1 nodes placed"
    And the output contains "nothing deployed, nothing reserved"
    And the output contains "WHY NOT"
    And the output contains "onboarding"
    And no provider holds a reservation right now
    And alice has no deployment

  Scenario: dms plan exits 3 when a node cannot be placed, and says why
    Given bob and carol each offer 1 CPU to alice's deployments
    And the ensemble "big.yaml":
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 8, ram: 64MiB}
          execution: {module: workload.wasm}
      """
    When alice runs `dms plan -f big.yaml`
    Then the command fails with exit code 3
    And the output contains "0 of 1 nodes placed"
    And the output contains "UNPLACED: job"
    And the output contains "for job: resource (cpu: need 8"
    And no provider holds a reservation right now

  Scenario: dms nodes lists the providers the node knows, not only its connections
    Given bob and carol each offer 1 CPU to alice's deployments
    When alice runs `dms nodes --refresh`
    Then the command succeeds
    And the output contains "LAST SEEN"
    And the output names the peers of bob and carol
    When alice runs `dms -o json nodes`
    Then the output is JSON
    And the output names the peers of bob and carol

  Scenario: A deployment is named by a unique prefix of its ID, an allocation by a prefix of its name

        web:
          executor: docker
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {image: "<workload-image>", cmd: [print=ready, sleep=10m]}
      """
    And within 60 seconds the deployment is "running" with the allocation "web" "running"
    When alice runs `dms deployment exec <deployment> web -- /workload print=inside exit=3`
    Then the command fails with exit code 3
    And the output contains "inside"
    When alice runs `dms deployment exec -i <deployment> web -- /workload cat=/dev/stdin` with the input "hello through stdin\n"
    Then the command succeeds
    And the output contains "hello through stdin"
    When alice runs `dms deployment exec -it <deployment> web -- /workload print=in-a-tty exit=4` on a terminal
    Then the command fails with exit code 4
    And the output contains "in-a-tty"
    When alice runs `dms deployment exec <deployment> nope -- /workload`
    Then it is refused with "has no allocation nope"

  @exec
  Scenario: deployment exec refuses an allocation whose executor cannot exec
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed, without waiting, the ensemble:
      """
      version: v1
      allocations:
        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=ready, sleep=10m]}
      """
    And within 60 seconds the deployment is "running" with the allocation "job" "running"
    When alice runs `dms deployment exec <deployment> job -- sh`
    Then it is refused with "exec is not supported by executor wasm"

  @logs
  Scenario: deployment logs -f starts from the last 10 lines, not the whole history
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        greeter:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution:
            module: workload.wasm
            args: [print=hello-by-prefix]
      """
    And the deployment completes within 30 seconds
    When alice runs `dms deployment status <prefix>` with <prefix> the first 6 characters of the deployment ID
    Then the command succeeds
    And the output contains "<deployment>"
    When alice runs `dms deployment logs <prefix> --allocation gree` with <prefix> the first 6 characters of the deployment ID
    Then the output contains "hello-by-prefix"
    When alice runs `dms deployment status <prefix>` with <prefix> the first 3 characters of the deployment ID
    Then it is refused with "too short"
    When alice runs `dms deployment logs <deployment> --allocation nosuch`
    Then it is refused with "has no allocation nosuch"
    When alice runs `dms deployment status dzzzzzzzzzzzzz`
    Then it is refused with "not found"

  Scenario: Scripts name deployments by prefix through the REST API too
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        greeter:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution:
            module: workload.wasm
            args: [print=hello]
      """
    And the deployment completes within 30 seconds
    When a program calls GET /api/v1/deployments/<prefix>/resolve?allocation=gr on alice's API with <prefix> the first 7 characters of the deployment ID
    Then the API answers 200
    And the answer contains "<deployment>"
    And the answer contains "greeter"
    When a program calls GET /api/v1/deployments/<prefix> on alice's API with <prefix> the first 5 characters of the deployment ID
    Then the API answers 200
    And the answer contains "<deployment>"
    When a program calls GET /api/v1/deployments/d on alice's API with the node's token
    Then the API answers 400 with the code "bad-request"
    When a program calls GET /api/v1/deployments/dzzzzzzzzzzzzz/logs on alice's API with the node's token
    Then the API answers 404 with the code "not-found"

  Scenario: Shell completion completes deployment IDs, allocation names and flag values
    Given bob offers 1 CPU to alice's deployments
    And alice has deployed the ensemble:
      """
      version: v1
      allocations:
        greeter:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution:
            module: workload.wasm
            args: [print=hello]
      """
    And the deployment completes within 30 seconds
    When alice runs `dms __complete deployment status d`
    Then the output contains "<deployment>"
    When alice runs `dms __complete deployment logs <deployment> --allocation gr`
    Then the output contains "greeter"
    When alice runs `dms __complete translate --from k`
    Then the output contains "kubernetes"
    When alice runs `dms __complete devnet up --executor wasm,d`
    Then the output contains "wasm,docker"
    When alice runs `dms __complete deployments -o y`
    Then the output contains "yaml"
    Given dave has a home
    When dave runs `dms __complete deployment status d`
    Then the command succeeds
    And the output does not contain "<deployment>"

  Scenario: -o yaml prints what -o json prints, as YAML
    When alice runs `dms -o yaml peers self`
    Then the output is the YAML form of alice's `dms -o json peers self`
    When alice runs `dms -o yaml key list`
    Then the output is the YAML form of alice's `dms -o json key list`
    When alice runs `dms -o yaml deployments`
    Then the output is the YAML form of alice's `dms -o json deployments`

  Scenario: A mistyped command gets the suggestions on one readable line
    When alice runs `dms deplo`
    Then it is a usage error saying "unknown command \"deplo\" for \"dms\"; did you mean \"deploy\""

  Scenario Outline: A command group refuses an unknown subcommand
    When alice runs `dms <command>`
    Then it is a usage error saying "<error>"

    Examples:
      | command           | error                                                                  |
      | deployment frob   | unknown command \"frob\" for \"dms deployment\"                        |
      | deployment statu  | unknown command \"statu\" for \"dms deployment\"; did you mean \"status\"? |
      | key lst           | unknown command \"lst\" for \"dms key\"                                |

  Scenario: An unknown deployment is not found, said once
    When alice runs `dms deployment status no-such-deployment`
    Then it is refused with "deployment no-such-deployment: not found"
    And the error says "not found" once

  Scenario: A wrong passphrase names where it was read from
    When alice runs `dms key check user` with the passphrase "not-the-passphrase"
    Then it is refused with "wrong passphrase for key user (read from $DMS_PASSPHRASE)"

  Scenario: A Docker Compose file given to dms deploy points at dms translate
    Given the file "compose.yaml":
      """
      services:
        web:
          image: nginx
      """
    When alice runs `dms deploy -f compose.yaml`
    Then the command fails with exit code 1
    And the error says "compose.yaml looks like a Docker Compose file, not an ensemble: convert it with `dms translate --from compose compose.yaml"

  Scenario: A duration too large to hold is said to be too large
    Given the file "forever.yaml":
      """
      version: v1
      timeouts:
        queue: 9999999h
      allocations:
        a: {executor: wasm, execution: {module: workload.wasm}}
      """
    When alice runs `dms validate -f forever.yaml`
    Then the command fails with exit code 1
    And the output contains "timeouts.queue: \"9999999h\" is too large"

  Scenario: Ctrl-C while following services exits 130 and leaves them running
    Given bob offers 1 CPU to alice's deployments
    And the file "svc.yaml":
      """
      version: v1
      allocations:
        svc:
          type: service
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [print=serving, sleep=10m]}
      """
    When alice starts `dms deploy -f svc.yaml --follow`
    Then within 60 seconds its error output says "all services run; Ctrl-C stops following and leaves them running (dms deployment shutdown"
    When it is sent SIGINT
    Then it exits with 130 within 10 seconds
    And its error output says "interrupted by SIGINT (Ctrl-C): deployment <deployment> goes on; follow it again with dms deployment logs -f <deployment>"
    When alice runs `dms deployment status <deployment>`
    Then the command succeeds
    And the output contains "running"
    And the output contains "PORTS"

        job:
          executor: wasm
          resources: {cpu: 0.5, ram: 64MiB}
          execution: {module: workload.wasm, args: [tick=14x10ms]}
      """
    And the deployment completes within 60 seconds
    When alice runs `dms deployment logs <deployment> -f`
    Then the command succeeds
    And the output has 10 lines
    And the output contains "tick 5"
    And the output does not contain "tick 4"
    When alice runs `dms deployment logs <deployment> -f --tail 0`
    Then the output has 14 lines

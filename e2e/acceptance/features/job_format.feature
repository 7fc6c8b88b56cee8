Feature: Job format
  A job is an ensemble written in YAML. dms validate checks one and names
  every problem with its path and line; dms translate turns a
  docker-compose file, Kubernetes manifests or a Nomad job into one.

  Background:
    Given dave has a home

  Scenario Outline: The examples are valid ensembles
    Given the example "<file>"
    When dave runs `dms validate -f <file>`
    Then the command succeeds
    And the output contains "<file>: valid"

    Examples:
      | file              |
      | hello.yaml        |
      | gang.yaml         |
      | multi.yaml        |
      | docker-hello.yaml |

  Scenario: Every problem of an ensemble is named with its path and line
    Given the file "bad.yaml":
      """
      version: v1
      allocations:
        a:
          executor: wasm
          resources: {cpu: lots, ram: 64MiB}
          execution:
            module: x.wasm
          depends_on: [ghost]
      """
    When dave runs `dms validate -f bad.yaml`
    Then the command fails with exit code 1
    And the output contains "allocations.a.resources.cpu: \"lots\" is not a CPU amount (line 5)"
    And the output contains "allocations.a.depends_on[0]: no allocation \"ghost\" (line 8)"

  Scenario: A misspelt field is named with a suggestion
    Given the file "typo.yaml":
      """
      version: v1
      allocations:
        web:
          executor: docker
          resources: {cpu: 1, ram: 64MiB}
          execution:
            imgae: alpine
      """
    When dave runs `dms validate -f typo.yaml`
    Then the command fails with exit code 1
    And the output contains "allocations.web.execution.imgae: unknown field (did you mean \"image\"?) (line 7)"

  Scenario: The problems are listed as JSON with -o json
    Given the file "bad.yaml":
      """
      version: v1
      allocations:
        a:
          executor: wasm
          resources: {cpu: lots, ram: 64MiB}
          execution: {module: x.wasm}
      """
    When dave runs `dms -o json validate -f bad.yaml`
    Then the command fails with exit code 1
    And the output is JSON
    And the output contains "\"path\": \"allocations.a.resources.cpu\""
    And the output contains "\"line\": 5"

  Scenario: YAML that does not parse is reported with its line
    Given the file "broken.yaml":
      """
      version: v1
      allocations:
        a: [unclosed
      """
    When dave runs `dms validate -f broken.yaml`
    Then the command fails with exit code 1
    And the output contains "YAML syntax"
    And the output contains "(line 3)"

  Scenario: What this release cannot honor is named before anything is deployed
    Given the file "standby.yaml":
      """
      version: v1
      allocations:
        web: {type: service, executor: docker, execution: {image: nginx}}
      nodes:
        front: {allocations: [web], redundancy: 2}
      """
    When dave runs `dms validate -f standby.yaml`
    Then the command fails with exit code 1
    And the output contains "nodes.front.redundancy: 2 copies: standby copies are not supported by this release of dms (use 1)"

  Scenario: A docker-compose file becomes an ensemble
    Given the file "compose.yaml":
      """
      services:
        db:
          image: postgres:16
          environment:
            POSTGRES_PASSWORD: example
        web:
          image: nginx:1.27
          ports: ["8080:80"]
          depends_on: [db]
          deploy:
            resources:
              limits: {cpus: "0.5", memory: 256M}
      """
    When dave runs `dms translate --from compose compose.yaml -o job.yaml`
    Then the command succeeds
    And the file "job.yaml" contains "executor: docker"
    And the file "job.yaml" contains "image: nginx:1.27"
    When dave runs `dms validate -f job.yaml`
    Then the command succeeds

  Scenario: Kubernetes manifests become an ensemble
    Given the file "k8s.yaml":
      """
      apiVersion: batch/v1
      kind: Job
      metadata: {name: report}
      spec:
        backoffLimit: 2
        template:
          spec:
            restartPolicy: Never
            containers:
              - name: report
                image: alpine:3.20
                command: [sh, -c, "echo done"]
                resources:
                  limits: {cpu: 500m, memory: 128Mi}
      """
    When dave runs `dms translate --from kubernetes k8s.yaml -o job.yaml`
    Then the command succeeds
    And the file "job.yaml" contains "image: alpine:3.20"
    When dave runs `dms validate -f job.yaml`
    Then the command succeeds

  Scenario: A Nomad job becomes an ensemble
    Given the file "job.json":
      """
      {"Job": {"ID": "batch", "Type": "batch", "TaskGroups": [{"Name": "g", "Count": 1,
        "Tasks": [{"Name": "t", "Driver": "docker",
          "Config": {"image": "alpine:3.20", "args": ["echo", "hi"]},
          "Resources": {"CPU": 500, "MemoryMB": 128}}]}]}}
      """
    When dave runs `dms translate --from nomad job.json -o job.yaml`
    Then the command succeeds
    And the file "job.yaml" contains "image: alpine:3.20"
    When dave runs `dms validate -f job.yaml`
    Then the command succeeds

  Scenario: What cannot be carried over is reported as a warning
    Given the file "compose.yaml":
      """
      services:
        web:
          image: nginx:1.27
          labels: {team: shop}
          logging: {driver: syslog}
      """
    When dave runs `dms translate --from compose compose.yaml -o job.yaml`
    Then the command succeeds
    And the error says "warning:"

  Scenario: An unknown source format is a usage error
    Given the file "job.txt":
      """
      nothing
      """
    When dave runs `dms translate --from helm job.txt`
    Then it is a usage error saying "--from \"helm\": want compose, kubernetes or nomad"

  Scenario: An ensemble that names another allocation as a host validates, with a warning
    Given the file "wordpress.yaml":
      """
      version: v1
      allocations:
        wordpress:
          type: service
          executor: docker
          execution:
            image: wordpress:6
            env: {WORDPRESS_DB_HOST: "db:3306", WORDPRESS_DB_NAME: wp}
        db:
          type: service
          executor: docker
          execution: {image: "mysql:8", env: {MYSQL_DATABASE: wp}}
      nodes:
        main: {allocations: [wordpress, db]}
      """
    When dave runs `dms validate -f wordpress.yaml`
    Then the command succeeds
    And the output contains "wordpress.yaml: valid (2 allocations on 1 node)"
    And the error has 1 line starting with "warning: allocation wordpress: env WORDPRESS_DB_HOST names allocation db as a host; allocations reach each other by name only on a subnet: add `network: {subnet: true}` to the ensemble (docs/ensemble.md#networking)"
    When dave runs `dms -o json validate -f wordpress.yaml`
    Then the command succeeds
    And the output lists 1 warning, the first at "allocations.wordpress.execution.env.WORDPRESS_DB_HOST"
    And the error output is empty

  Scenario: A translated wordpress+mysql gets a subnet, where wordpress finds its database by name
    Given the file "compose.yaml":
      """
      services:
        wordpress:
          image: wordpress:6
          environment: {WORDPRESS_DB_HOST: db, WORDPRESS_DB_NAME: wp}
        db:
          image: mysql:8
          environment: {MYSQL_DATABASE: wp}
      """
    When dave runs `dms translate --from compose compose.yaml -o job.yaml`
    Then the command succeeds
    And the file "job.yaml" contains "subnet: true"
    And the error has 0 lines starting with "warning: allocation wordpress: env WORDPRESS_DB_HOST names allocation db as a host"

  Scenario: A compose file that would lose a whole service is refused
    Given the file "compose.yaml":
      """
      services:
        web:
          image: nginx:1.27
        api:
          build: ./api
      """
    When dave runs `dms translate compose.yaml -o job.yaml`
    Then the command fails with exit code 1
    And the error says "dropped: services.api: not carried over: it has no image"
    And the error says "1 part would be dropped"
    And the file "job.yaml" does not exist

  Scenario: --allow-partial writes what it can and lists what it dropped at the top
    Given the file "compose.yaml":
      """
      services:
        web:
          image: nginx:1.27
          volumes: ["./nginx.conf:/etc/nginx/nginx.conf:ro"]
        api:
          build: ./api
      """
    When dave runs `dms translate --allow-partial compose.yaml -o job.yaml`
    Then the command succeeds
    And the file "job.yaml" starts with "# PARTIAL: dropped 1 part of compose.yaml"
    And the file "job.yaml" contains "#   services.api: not carried over: it has no image"
    And the file "job.yaml" contains "# NOT SHIPPED: 1 file"
    And the file "job.yaml" contains "./nginx.conf (mounted at /etc/nginx/nginx.conf) is not shipped"
    When dave runs `dms validate -f job.yaml`
    Then the command succeeds

  Scenario: A Nomad job file in HCL becomes an ensemble
    Given the file "redis.nomad.hcl":
      """
      job "redis" {
        group "cache" {
          network {
            port "db" {
              to = 6379
            }
          }
          task "redis" {
            driver = "docker"
            config {
              image = "redis:7"
              ports = ["db"]
            }
            resources {
              cpu    = 500
              memory = 256
            }
          }
        }
      }
      """
    When dave runs `dms translate redis.nomad.hcl -o job.yaml`
    Then the command succeeds
    And the file "job.yaml" contains "(nomad) by dms translate"
    And the file "job.yaml" contains "image: redis:7"
    And the file "job.yaml" contains "port: 6379"
    When dave runs `dms validate -f job.yaml`
    Then the command succeeds

  Scenario: A periodic Nomad job is not silently made a one-time run
    Given the file "nightly.nomad.hcl":
      """
      job "nightly" {
        type = "batch"
        periodic {
          crons = ["0 3 * * *"]
        }
        group "g" {
          task "t" {
            driver = "docker"
            config {
              image = "busybox:1"
            }
          }
        }
      }
      """
    When dave runs `dms translate nightly.nomad.hcl`
    Then the command fails with exit code 1
    And the error says "a periodic job's schedule (0 3 * * *) is not carried over"
    When dave runs `dms translate --allow-partial nightly.nomad.hcl`
    Then the command succeeds
    And the output contains "# PARTIAL: dropped 1 part of nightly.nomad.hcl"

  Scenario: A Nomad job file with an error names the file and the line
    Given the file "bad.nomad":
      """
      job "x" {
        group "g" {
          count =
        }
      }
      """
    When dave runs `dms translate bad.nomad`
    Then the command fails with exit code 1
    And the error says "translate bad.nomad: parse nomad job: line 3, column"
    And the error is one line

  Scenario Outline: The format is told from the file when --from is omitted
    Given the file "<file>":
      """
      <content>
      """
    When dave runs `dms translate <file>`
    Then the command succeeds
    And the output contains "(<format>) by dms translate"

    Examples:
      | file        | content                                                                                                                                                   | format     |
      | stack.yml   | {"services": {"web": {"image": "nginx:1.27"}}}                                                                                                          | compose    |
      | pod.yaml    | {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}                               | kubernetes |
      | job.json    | {"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "docker", "Config": {"image": "alpine:3.20"}}]}]}}                     | nomad      |

  Scenario: A file of no known format asks for --from
    Given the file "notes.yaml":
      """
      title: my notes
      """
    When dave runs `dms translate notes.yaml`
    Then the command fails with exit code 1
    And the error says "cannot tell the format of notes.yaml"
    And the error says "give --from"

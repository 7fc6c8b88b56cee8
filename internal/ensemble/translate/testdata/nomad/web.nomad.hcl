# The job of service.json, as people write it: TestNomadHCLMatchesJSON
# checks that both translate alike.
variable "image" {
  default = "nginx:1.27"
}

locals {
  team = "storefront"
}

job "web" {
  type        = "service"
  datacenters = ["dc1"]

  constraint {
    attribute = "${attr.kernel.name}"
    value     = "linux"
  }

  meta {
    team = local.team
  }

  group "frontend" {
    count = 2

    network {
      mode = "bridge"
      port "http" {
        static = 8080
        to     = 80
      }
      port "metrics" {
        to = 9100
      }
      port "debug" {}
    }

    service {
      name = "web"
      port = "http"

      check {
        name     = "alive"
        type     = "http"
        path     = "/health"
        interval = "10s"
        timeout  = "2s"
      }
      check {
        name     = "port"
        type     = "tcp"
        interval = "10s"
        timeout  = "2s"
      }
    }

    restart {
      attempts = 3
      interval = "30m"
      delay    = "15s"
      mode     = "fail"
    }

    ephemeral_disk {
      size = 500
    }

    task "nginx" {
      driver = "docker"

      config {
        image   = var.image
        ports   = ["http", "metrics"]
        volumes = ["local/site:/usr/share/nginx/html"]
      }

      env {
        REGION = "${NOMAD_REGION}"
        MODE   = "prod"
      }

      resources {
        cpu        = 500
        memory     = 256
        memory_max = 512
      }

      template {
        destination = "local/site/index.html"
        data        = "hello"
      }
    }
  }
}

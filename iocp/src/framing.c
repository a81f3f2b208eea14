/* framing.c: placeholder, being written. */
typedef int iocpi_framing_placeholder;
